"""Tenant B's admin key on tenant A's ids: 404, never 403, never A's data.

The routes that take an id are read from the app itself: a new one without an entry in
MATRIX (or EXEMPT, with the reason) fails `test_the_matrix_names_every_route_with_an_id`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.routing import iter_route_contexts

from athos_identity.app import create_app
from support import TenantKeys, create_key

PROBLEM_JSON = "application/problem+json"

# (method, path) -> (which of A's resources fills the path's id, JSON body or None)
MATRIX: dict[tuple[str, str], tuple[str, Any]] = {
    ("DELETE", "/v1/keys/{key_id}"): ("key", None),
    ("GET", "/v1/connectors/{connector_id}"): ("bigcommerce", None),
    ("PATCH", "/v1/connectors/{connector_id}"): ("bigcommerce", {"name": "taken over"}),
    ("DELETE", "/v1/connectors/{connector_id}"): ("bigcommerce", None),
    ("PUT", "/v1/connectors/{connector_id}/bigcommerce/credentials"): (
        "bigcommerce",
        {"store_hash": "abcde", "access_token": "t" * 20},
    ),
    ("DELETE", "/v1/connectors/{connector_id}/bigcommerce/credentials"): ("bigcommerce", None),
    ("POST", "/v1/connectors/{connector_id}/bigcommerce/check"): ("bigcommerce", None),
    ("POST", "/v1/connectors/{connector_id}/shopify/grant"): ("shopify", {}),
    ("GET", "/v1/connectors/{connector_id}/shopify"): ("shopify", None),
    ("POST", "/v1/connectors/{connector_id}/shopify/revoke"): ("shopify", {}),
    ("GET", "/v1/connectors/{connector_id}/shopify/compliance-requests"): ("shopify", None),
    ("GET", "/v1/shopify/compliance-requests/{request_id}"): ("compliance_request", None),
    ("POST", "/v1/connectors/{connector_id}/syncs"): ("bigcommerce", {"mode": "full"}),
    ("GET", "/v1/connectors/{connector_id}/syncs"): ("bigcommerce", None),
    ("GET", "/v1/syncs/{run_id}"): ("run", None),
    ("POST", "/v1/syncs/{run_id}/cancel"): ("run", None),
}
# Routes with an id in the path that tenant B's key cannot even try, or where the id is
# not a resource of ours; each is tested for isolation as said.
EXEMPT: dict[tuple[str, str], str] = {
    # No API key: a delivery is authenticated by the connector's own webhook secret, and
    # tenant B has no way to name A's secret (tests/connectors/test_bigcommerce_webhooks.py:
    # a wrong or missing secret is a 401 and nothing is recorded).
    ("POST", "/v1/webhooks/bigcommerce/{connector_id}"): "webhook secret, not a key",
    # The customer id is the PLATFORM's (two tenants may both have a customer "42"), so B
    # asking for "42" is B's own customer 42: tested below, B sees none of A's orders.
    ("GET", "/v1/customers/{customer_id}/orders"): "platform id: see test_customer_orders",
}


# GET routes without an id that hold no tenant data to list.
NOT_TENANT_DATA = {"/v1/shopify/oauth/callback"}  # a browser redirect (no key)


def routes_with_an_id() -> set[tuple[str, str]]:
    found = set()
    for route in iter_route_contexts(create_app().router.routes):
        path, methods = route.path, route.methods or set()
        if not path or "{" not in path or not path.startswith("/v1/"):
            continue
        for method in methods - {"HEAD", "OPTIONS"}:
            found.add((method, path))
    return found


def test_the_matrix_names_every_route_with_an_id() -> None:
    routes = routes_with_an_id()
    missing = routes - set(MATRIX) - set(EXEMPT)
    assert not missing, f"add these routes to the isolation MATRIX (or EXEMPT): {missing}"
    stale = (set(MATRIX) | set(EXEMPT)) - routes
    assert not stale, f"no such routes any more: {stale}"


@dataclass
class TenantA:
    keys: TenantKeys
    ids: dict[str, str]


async def _make_tenant_a(
    client: httpx.AsyncClient, tenant: TenantKeys, owner_conn: psycopg.Connection
) -> TenantA:
    ids: dict[str, str] = {}
    for platform, store in (("shopify", "iso-a.myshopify.com"), ("bigcommerce", "isoa")):
        created = await client.post(
            "/v1/connectors",
            json={"platform": platform, "name": f"A {platform}", "store": store},
            headers=tenant.admin,
        )
        assert created.status_code == 201, created.text
        ids[platform] = created.json()["id"]
    await create_key(tenant.tenant_id, "lookup")
    keys = (await client.get("/v1/keys", headers=tenant.admin)).json()
    ids["key"] = next(k["id"] for k in keys if k["scopes"] == ["lookup"])
    run_id, request_id = uuid.uuid4(), uuid.uuid4()
    tid = tenant.tenant_id
    owner_conn.execute(
        "INSERT INTO sync_runs (tenant_id, id, connector_id, mode, status)"
        " VALUES (%s, %s, %s, 'full', 'running')",
        (tid, run_id, ids["bigcommerce"]),
    )
    owner_conn.execute(
        "INSERT INTO shopify_compliance_requests"
        " (tenant_id, id, connector_id, shop, topic, webhook_id, customer_id)"
        " VALUES (%s, %s, %s, 'iso-a.myshopify.com', 'customers/redact', 'w1', '42')",
        (tid, request_id, ids["shopify"]),
    )
    owner_conn.execute(
        "INSERT INTO orders (tenant_id, connector_id, order_id, customer_id, key_version,"
        " currency, total) VALUES (%s, %s, 'A-order-1', '42', 1, 'USD', 10)",
        (tid, ids["bigcommerce"]),
    )
    ids["run"], ids["compliance_request"] = str(run_id), str(request_id)
    ingest = await client.post(
        "/v1/identity/records",
        json={"records": [{"customer_id": "A-cust-7", "emails": ["a.shopper@example.com"]}]},
        headers=tenant.admin,
    )
    assert ingest.status_code == 200, ingest.text
    return TenantA(tenant, ids)


def _fill(path: str, resource_id: str) -> str:
    start, end = path.index("{"), path.index("}")
    return path[:start] + resource_id + path[end + 1 :]


@pytest.mark.parametrize(("method", "path"), sorted(MATRIX), ids=lambda v: str(v))
async def test_another_tenants_id_is_404(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    other_tenant: TenantKeys,
    owner_conn: psycopg.Connection,
    method: str,
    path: str,
) -> None:
    a = await _make_tenant_a(client, tenant, owner_conn)
    resource, body = MATRIX[(method, path)]
    url = _fill(path, a.ids[resource])
    before = _snapshot(owner_conn, tenant)

    response = await client.request(method, url, json=body, headers=other_tenant.admin)

    assert response.status_code == 404, f"{method} {url}: {response.status_code} {response.text}"
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    for value in a.ids.values():
        assert value not in response.text
    assert _snapshot(owner_conn, tenant) == before, "B's request changed A's data"
    # and A's own key still reaches it (the 404 is not a broken route)
    if method == "GET":
        assert (await client.get(url, headers=tenant.admin)).status_code == 200


def _snapshot(conn: psycopg.Connection, tenant: TenantKeys) -> str:
    rows = {}
    for table in ("connectors", "api_keys", "sync_runs", "connector_credentials", "orders"):
        rows[table] = conn.execute(
            f"SELECT * FROM {table} WHERE tenant_id = %s ORDER BY 1, 2",
            (tenant.tenant_id,),
        ).fetchall()
    return json.dumps(rows, default=str)


async def test_no_list_or_count_shows_another_tenants_data(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    other_tenant: TenantKeys,
    owner_conn: psycopg.Connection,
) -> None:
    a = await _make_tenant_a(client, tenant, owner_conn)
    b_connector = (
        await client.post(
            "/v1/connectors",
            json={"platform": "shopify", "name": "B", "store": "iso-b.myshopify.com"},
            headers=other_tenant.admin,
        )
    ).json()["id"]
    secrets = [*a.ids.values(), str(tenant.tenant_id), "A-cust-7", "A-order-1", "A shopify"]
    # every list route without a path id, as the app declares them, plus B's own sub-lists
    lists = [
        path
        for method, path in {
            (m, r.path)
            for r in iter_route_contexts(create_app().router.routes)
            for m in (r.methods or set())
        }
        if method == "GET"
        and path
        and path.startswith("/v1/")
        and "{" not in path
        and path not in NOT_TENANT_DATA
    ]
    lists += [
        f"/v1/connectors/{b_connector}/syncs",
        f"/v1/connectors/{b_connector}/shopify/compliance-requests",
    ]
    for path in lists:
        response = await client.get(path, headers=other_tenant.admin)
        assert response.status_code == 200, f"{path}: {response.text}"
        for secret in secrets:
            assert secret not in response.text, f"{path} shows tenant A's {secret}"
    keys = (await client.get("/v1/keys", headers=other_tenant.admin)).json()
    assert len(keys) == 1  # B's own admin key only
    assert [
        c["id"] for c in (await client.get("/v1/connectors", headers=other_tenant.admin)).json()
    ] == [b_connector]


async def test_customer_orders(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    other_tenant: TenantKeys,
    owner_conn: psycopg.Connection,
) -> None:
    """Customer "42" of tenant A has an order; B's customer "42" (B's own) has none."""
    a = await _make_tenant_a(client, tenant, owner_conn)
    mine = (await client.get("/v1/customers/42/orders", headers=tenant.admin)).json()
    assert [o["order_id"] for o in mine["orders"]] == ["A-order-1"]
    theirs = await client.get("/v1/customers/42/orders", headers=other_tenant.admin)
    assert theirs.status_code == 200 and theirs.json()["orders"] == []
    filtered = await client.get(
        f"/v1/customers/42/orders?connector_id={a.ids['bigcommerce']}", headers=other_tenant.admin
    )
    assert filtered.status_code in (200, 404) and "A-order-1" not in filtered.text


async def test_lookups_and_erasure_never_cross_tenants(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    other_tenant: TenantKeys,
    owner_conn: psycopg.Connection,
) -> None:
    await _make_tenant_a(client, tenant, owner_conn)
    ident = {"identifiers": [{"type": "email", "value": "a.shopper@example.com"}]}
    b_lookup = await create_key(other_tenant.tenant_id, "lookup")
    theirs = await client.post(
        "/v1/identity/lookup", json=ident, headers={"Authorization": f"Bearer {b_lookup}"}
    )
    assert theirs.json()["results"] == [{"matched": False, "customers": []}]
    erased = await client.post("/v1/identity/erase", json=ident, headers=other_tenant.admin)
    assert erased.status_code == 200 and erased.json()["links_removed"] == 0
    mine = await client.post("/v1/identity/lookup", json=ident, headers=tenant.admin)
    assert mine.json()["results"][0]["matched"] is True
