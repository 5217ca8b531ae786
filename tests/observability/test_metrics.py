"""GET /metrics: request latency by route template, look-ups, sync, platform waits, jobs."""

from __future__ import annotations

import httpx
from observability_support import metric_value

from athos_identity import observability
from support import TenantKeys, create_key


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
