"""Tenants and API keys over HTTP: keys shown once, scopes, revocation, tenant boundaries."""

from __future__ import annotations

import hashlib
import uuid

import httpx

from support import TenantKeys, bearer, create_key

PROBLEM = "application/problem+json"


async def test_admin_creates_lists_and_revokes_keys(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    created = await client.post(
        "/v1/keys", json={"scopes": ["lookup"], "name": "sms"}, headers=tenant.admin
    )
    assert created.status_code == 201
    body = created.json()
    assert body["key"].startswith("athk_") and body["scopes"] == ["lookup"]

    listed = await client.get("/v1/keys", headers=tenant.admin)
    assert listed.status_code == 200
    names = {k["name"] for k in listed.json()}
    assert names == {"first admin key", "sms"}
    assert all("key" not in k for k in listed.json()), "keys are shown once, never listed"

    lookup_headers = bearer(body["key"])
    assert (await client.get("/v1/keys", headers=lookup_headers)).status_code == 403

    revoked = await client.delete(f"/v1/keys/{body['id']}", headers=tenant.admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    after = await client.get("/v1/keys", headers=lookup_headers)
    assert after.status_code == 401
    assert after.headers["content-type"] == PROBLEM


async def test_only_the_hash_of_a_key_is_stored(
    client: httpx.AsyncClient, tenant: TenantKeys, owner_conn
) -> None:
    created = (
        await client.post("/v1/keys", json={"scopes": ["admin"]}, headers=tenant.admin)
    ).json()
    rows = owner_conn.execute(
        "SELECT key_hash FROM api_keys WHERE id = %s", (created["id"],)
    ).fetchall()
    assert rows == [(hashlib.sha256(created["key"].encode()).digest(),)]
    dump = owner_conn.execute("SELECT string_agg(api_keys::text, ' ') FROM api_keys").fetchone()[0]
    assert created["key"] not in dump and created["key"][-43:] not in dump


async def test_last_used_at_is_recorded(client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    first = (await client.get("/v1/keys", headers=tenant.admin)).json()
    admin = next(k for k in first if k["name"] == "first admin key")
    assert admin["last_used_at"] is not None


async def test_unknown_malformed_and_missing_keys_get_401(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    forged = f"athk_{tenant.tenant_id.hex}_{'A' * 43}"
    for headers in ({}, bearer("nonsense"), bearer(forged), {"Authorization": "Basic abc"}):
        response = await client.get("/v1/keys", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["status"] == 401


async def test_another_tenants_key_id_is_404(
    client: httpx.AsyncClient, tenant: TenantKeys, other_tenant: TenantKeys
) -> None:
    theirs = (await client.get("/v1/keys", headers=other_tenant.admin)).json()[0]["id"]
    response = await client.delete(f"/v1/keys/{theirs}", headers=tenant.admin)
    assert response.status_code == 404
    still = (await client.get("/v1/keys", headers=other_tenant.admin)).json()[0]
    assert still["revoked_at"] is None
    mine = (await client.get("/v1/keys", headers=tenant.admin)).json()
    assert {k["id"] for k in mine}.isdisjoint({theirs})


async def test_random_key_id_is_404(client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    response = await client.delete(f"/v1/keys/{uuid.uuid4()}", headers=tenant.admin)
    assert response.status_code == 404


async def test_admin_cannot_mint_operator_keys(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    response = await client.post("/v1/keys", json={"scopes": ["operator"]}, headers=tenant.admin)
    assert response.status_code == 403


async def test_operator_creates_tenant_with_a_working_admin_key(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    operator = await create_key(tenant.tenant_id, "operator")
    created = await client.post(
        "/v1/tenants", json={"name": "Initech", "default_region": "FR"}, headers=bearer(operator)
    )
    assert created.status_code == 201
    body = created.json()
    assert body["tenant"]["name"] == "Initech" and body["tenant"]["default_region"] == "FR"
    new_admin = bearer(body["admin_key"]["key"])
    keys = await client.get("/v1/keys", headers=new_admin)
    assert keys.status_code == 200 and [k["id"] for k in keys.json()] == [body["admin_key"]["id"]]
    # the operator key reads no tenant data
    assert (await client.get("/v1/keys", headers=bearer(operator))).status_code == 403
    # an admin key cannot create tenants
    assert (
        await client.post("/v1/tenants", json={"name": "x"}, headers=tenant.admin)
    ).status_code == 403


async def test_invalid_bodies_name_the_field(client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    response = await client.post("/v1/keys", json={"scopes": ["root"]}, headers=tenant.admin)
    assert response.status_code == 422
    body = response.json()
    assert response.headers["content-type"] == PROBLEM
    assert body["errors"][0]["field"] == "body.scopes.0"
    assert "root" not in response.text, "submitted values are not echoed"

    empty = await client.post("/v1/keys", json={"scopes": []}, headers=tenant.admin)
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "body.scopes"


async def test_malformed_json_is_400_problem(client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    response = await client.post(
        "/v1/keys",
        content=b'{"scopes": [',
        headers={**tenant.admin, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["title"] == "Malformed JSON"
