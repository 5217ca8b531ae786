"""GET /v1/audit: who did what, newest first, paginated, counts only, per tenant."""

from __future__ import annotations

import httpx

from support import TenantKeys

CANARY = "audit.canary@example.org"


async def events(client: httpx.AsyncClient, keys: TenantKeys, **params: object) -> dict:
    response = await client.get("/v1/audit", params=params, headers=keys.admin)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_actions_are_recorded_with_the_acting_key(
    client: httpx.AsyncClient, tenant: TenantKeys, other_tenant: TenantKeys
) -> None:
    admin_key_id = (await client.get("/v1/keys", headers=tenant.admin)).json()[0]["id"]
    created = await client.post(
        "/v1/connectors",
        json={"platform": "bigcommerce", "name": "BC", "store": "abc123"},
        headers=tenant.admin,
    )
    connector_id = created.json()["id"]
    await client.patch(
        f"/v1/connectors/{connector_id}", json={"name": "Renamed"}, headers=tenant.admin
    )
    key = await client.post("/v1/keys", json={"scopes": ["lookup"]}, headers=tenant.admin)
    await client.delete(f"/v1/keys/{key.json()['id']}", headers=tenant.admin)
    await client.post(
        "/v1/identity/records",
        json={"records": [{"customer_id": "c1", "emails": [CANARY]}]},
        headers=tenant.admin,
    )
    erased = await client.post(
        "/v1/identity/erase",
        json={"identifiers": [{"type": "email", "value": CANARY}]},
        headers=tenant.admin,
    )
    assert erased.status_code == 200
    await client.delete(f"/v1/connectors/{connector_id}", headers=tenant.admin)

    page = await events(client, tenant)
    actions = [e["action"] for e in page["events"]]
    assert actions == [
        "connector.delete",
        "identity.erase",
        "key.revoke",
        "key.create",
        "connector.update",
        "connector.create",
        "key.create",  # the tenant's first admin key (created without an API key)
    ]
    by_action = {e["action"]: e for e in page["events"]}
    assert by_action["connector.create"]["key_id"] == admin_key_id
    assert by_action["connector.create"]["target_id"] == connector_id
    assert by_action["key.revoke"]["target_id"] == key.json()["id"]
    assert by_action["identity.erase"]["details"] == {
        "identifiers": 1,
        "customers": 0,
        "links_removed": 1,
        "orders_scrubbed": 0,
    }
    assert by_action["identity.erase"]["request_id"]
    assert page["events"][-1]["key_id"] is None
    assert CANARY not in str(page)
    # Another tenant sees only its own first key.
    assert [e["action"] for e in (await events(client, other_tenant))["events"]] == ["key.create"]


async def test_pages_newest_first_with_a_cursor(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    for _ in range(4):
        await client.post("/v1/keys", json={"scopes": ["lookup"]}, headers=tenant.admin)
    seen = []
    cursor = None
    while True:
        page = await events(client, tenant, limit=2, **({"cursor": cursor} if cursor else {}))
        seen += page["events"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5 and len({e["id"] for e in seen}) == 5
    times = [e["at"] for e in seen]
    assert times == sorted(times, reverse=True)
    only = await events(client, tenant, action="key.create", limit=200)
    assert len(only["events"]) == 5


async def test_audit_needs_admin_and_rejects_bad_cursors(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    from support import create_key

    lookup = await create_key(tenant.tenant_id, "lookup")
    denied = await client.get("/v1/audit", headers={"Authorization": f"Bearer {lookup}"})
    assert denied.status_code == 403
    bad = await client.get("/v1/audit", params={"cursor": "nonsense"}, headers=tenant.admin)
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
