"""Request ids, context ids in JSON log lines (requests and pulls), access lines without
values."""

from __future__ import annotations

import logging
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
from observability_support import json_logs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "connectors"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sync"))

from sync_support import granted_bigcommerce_connector, run_jobs_until_idle, start_sync

from support import TenantKeys, create_key

pytest_plugins = ["bigcommerce_fixtures"]  # bc_store: a sandbox BigCommerce store

CANARY = "canary.request.log@example.org"


async def test_request_id_is_generated_and_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert len(response.headers["x-request-id"]) == 32
    again = await client.get("/healthz")
    assert again.headers["x-request-id"] != response.headers["x-request-id"]


async def test_callers_request_id_is_kept_when_plain(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "abc-123.def"})
    assert response.headers["x-request-id"] == "abc-123.def"
    # Something that is not a plain token (it could carry anything) is replaced.
    odd = await client.get("/healthz", headers={"X-Request-ID": f"{CANARY} x"})
    assert CANARY not in odd.headers["x-request-id"]


async def test_log_lines_carry_ids_and_never_the_values(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    lookup_key = await create_key(tenant.tenant_id, "lookup")
    with json_logs() as logs:
        response = await client.post(
            "/v1/identity/lookup",
            json={"identifiers": [{"type": "email", "value": CANARY}]},
            headers={"Authorization": f"Bearer {lookup_key}", "X-Request-ID": "req-42"},
        )
        assert response.status_code == 200
        bad = await client.post(
            "/v1/identity/lookup",
            json={"identifiers": [{"type": "email", "value": "not an e-mail " + CANARY}]},
            headers={"Authorization": f"Bearer {lookup_key}"},
        )
        assert bad.status_code == 422
    assert CANARY not in logs.text and lookup_key not in logs.text
    access = [line for line in logs.lines if line["logger"] == "athos_identity.access"]
    first = access[0]
    assert first["request_id"] == "req-42"
    assert first["route"] == "/v1/identity/lookup"
    assert first["method"] == "POST" and first["status"] == 200
    assert first["tenant_id"] == str(tenant.tenant_id)
    uuid.UUID(first["key_id"])
    assert first["duration_ms"] >= 0
    assert access[1]["status"] == 422


async def test_access_line_names_the_route_template_not_the_path(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    connector = uuid.uuid4()
    with json_logs() as logs:
        await client.get(f"/v1/connectors/{connector}", headers=tenant.admin)
        await client.get(f"/nowhere/{CANARY}")
    routes = [line["route"] for line in logs.lines if line["logger"] == "athos_identity.access"]
    assert routes == ["/v1/connectors/{connector_id}", "unmatched"]
    # (the test's own httpx client logs the URLs it calls; the service's lines do not)
    assert CANARY not in str([line for line in logs.lines if line["logger"] != "httpx"])


async def test_a_pulls_worker_log_lines_carry_the_connector_and_run_ids(
    client: httpx.AsyncClient, tenant: TenantKeys, bc_store: Any
) -> None:
    """An operator follows one pull through the worker's logs by its ids: every line the
    service writes while pulling names the tenant, the connector and the run."""
    connector_id = await granted_bigcommerce_connector(client, tenant.admin, bc_store)
    run_id = await start_sync(client, tenant.admin, connector_id, "full")
    bc_store.add_fault(kind="429", count=1)  # a wait on the platform's limit is logged too
    with json_logs(logging.DEBUG) as logs:
        await run_jobs_until_idle()
    run = (await client.get(f"/v1/syncs/{run_id}", headers=tenant.admin)).json()
    assert run["status"] == "succeeded", run

    pulling = [
        line
        for line in logs.lines
        if line["logger"].startswith(("athos_identity.sync.engine", "athos_identity.connectors"))
    ]
    assert len(pulling) >= 2, [line["msg"] for line in logs.lines]
    for line in pulling:
        assert line.get("connector_id") == connector_id, line
        assert line.get("run_id") == run_id, line
        assert line.get("tenant_id") == str(tenant.tenant_id), line
    assert any(line["msg"] == "sync run starts" for line in pulling)
