"""GET /metrics: request latency by route template, look-ups, sync, platform waits, jobs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
from observability_support import metric_value

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "connectors"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sync"))

from sync_support import granted_bigcommerce_connector, run_jobs_until_idle, start_sync

from athos_identity import observability
from support import TenantKeys, create_key

pytest_plugins = ["bigcommerce_fixtures"]  # bc_store: a sandbox BigCommerce store


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_lookups_latency_and_match_rate(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    await client.post(
        "/v1/identity/records",
        json={"records": [{"customer_id": "c1", "emails": ["known@example.com"]}]},
        headers=tenant.admin,
    )
    before = await scrape(client)
    key = await create_key(tenant.tenant_id, "lookup")
    body = {
        "identifiers": [
            {"type": "email", "value": "known@example.com"},
            {"type": "email", "value": "unknown@example.com"},
        ]
    }
    for _ in range(3):
        response = await client.post(
            "/v1/identity/lookup", json=body, headers={"Authorization": f"Bearer {key}"}
        )
        assert response.status_code == 200
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return metric_value(after, name, **labels) - metric_value(before, name, **labels)

    assert delta("athos_lookup_identifiers_total") == 6
    assert delta("athos_lookup_matched_identifiers_total") == 3
    assert (
        delta(
            "athos_http_request_duration_seconds_count",
            method="POST",
            route="/v1/identity/lookup",
            status_class="2xx",
        )
        == 3
    )
    # Nothing tenant- or value-specific in label values.
    assert "known@example.com" not in after and str(tenant.tenant_id) not in after


async def test_job_queue_gauges_are_read_on_scrape(client: httpx.AsyncClient) -> None:
    text = await scrape(client)
    assert metric_value(text, "athos_jobs_scrape_ok") == 1
    assert 'athos_jobs{queue="pulls",status="todo"}' in text
    assert "athos_jobs_oldest_age_seconds" in text


async def test_platform_waits_and_sync_counters_are_exposed(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    observability.platform_wait("bigcommerce", "pacing", 1.5)
    with observability.sync_stream("bigcommerce", "customers"):
        observability.sync_page({"customers": 250, "skipped": 2})
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return metric_value(after, name, **labels) - metric_value(before, name, **labels)

    assert delta("athos_platform_throttle_waits_total", platform="bigcommerce") == 1
    assert delta("athos_platform_throttle_wait_seconds_total", platform="bigcommerce") == 1.5
    assert delta("athos_sync_pages_total", platform="bigcommerce", stream="customers") == 1
    assert delta("athos_sync_records_total", platform="bigcommerce", stream="customers") == 250


async def test_a_failing_pull_is_counted_in_the_sync_errors_family(
    client: httpx.AsyncClient, tenant: TenantKeys, bc_store: Any
) -> None:
    """The store answers 5xx past every retry of the client: the pull stops on the error
    (its job is retried later), and the alert an operator sets on athos_sync_errors_total
    sees it, by platform, stream and error."""
    connector_id = await granted_bigcommerce_connector(client, tenant.admin, bc_store)
    before = await scrape(client)
    run_id = await start_sync(client, tenant.admin, connector_id, "full")
    bc_store.add_fault(kind="5xx", count=50)
    await run_jobs_until_idle()
    run = (await client.get(f"/v1/syncs/{run_id}", headers=tenant.admin)).json()
    assert run["status"] != "succeeded" and run["last_error"], run
    after = await scrape(client)

    def errors(text: str) -> float:
        return metric_value(text, "athos_sync_errors_total", platform="bigcommerce")

    assert errors(after) - errors(before) == 1
    assert 'athos_sync_errors_total{error="' in after
    assert bc_store.token not in after and str(tenant.tenant_id) not in after
