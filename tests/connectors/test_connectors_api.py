"""Connector CRUD over HTTP: validation, one connector per store, tenant boundaries, purge."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from athos_identity import db
from athos_identity.tenants import service as tenants
from athos_identity.tenants.schemas import Scope

TenantKeys = Any  # the root conftest's type; not imported (the name "conftest" is shared)

PROBLEM = "application/problem+json"


async def create(client: httpx.AsyncClient, tenant: TenantKeys, **body: object) -> httpx.Response:
    return await client.post("/v1/connectors", json=body, headers=tenant.admin)


async def test_create_read_list_update_delete(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    created = await create(
        client, tenant, platform="shopify", name="EU shop",
        store="Demo-Shop.myshopify.com", store_country="FR",
    )  # fmt: skip
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["store"] == "demo-shop.myshopify.com"
    assert body["state"] == "not_granted" and body["scopes"] == [] and body["warnings"] == []
    assert body["credential_hint"] is None and body["last_error"] is None
    assert body["platform"] == "shopify" and body["store_country"] == "FR"
    connector_id = body["id"]

    bc = await create(client, tenant, platform="bigcommerce", name="US store")
    assert bc.status_code == 201 and bc.json()["store"] is None

    listed = (await client.get("/v1/connectors", headers=tenant.admin)).json()
    assert [c["id"] for c in listed] == [connector_id, bc.json()["id"]]

    one = await client.get(f"/v1/connectors/{connector_id}", headers=tenant.admin)
    assert one.status_code == 200 and one.json() == body | {"updated_at": one.json()["updated_at"]}

    patched = await client.patch(
        f"/v1/connectors/{connector_id}",
        json={"name": "Main shop", "store_country": "DE", "store": "other.myshopify.com"},
        headers=tenant.admin,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["name"] == "Main shop" and patched.json()["store_country"] == "DE"
    assert patched.json()["store"] == "other.myshopify.com"
    assert patched.json()["updated_at"] >= body["updated_at"]

    deleted = await client.delete(f"/v1/connectors/{connector_id}", headers=tenant.admin)
    assert deleted.status_code == 204
    gone = await client.get(f"/v1/connectors/{connector_id}", headers=tenant.admin)
    assert gone.status_code == 404 and gone.headers["content-type"] == PROBLEM


async def test_invalid_stores_are_422_naming_the_field(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    cases = [
        {"platform": "shopify", "name": "x", "store": "shop.example.com"},
        {"platform": "shopify", "name": "x", "store": "-bad.myshopify.com"},
        {"platform": "shopify", "name": "x", "store": "a b.myshopify.com"},
        {"platform": "bigcommerce", "name": "x", "store": "ABC/DEF"},
        {"platform": "bigcommerce", "name": "x", "store": "abc def"},
    ]
    for body in cases:
        response = await client.post("/v1/connectors", json=body, headers=tenant.admin)
        assert response.status_code == 422, body
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["errors"][0]["field"] == "body.store"
    for body in (
        {"platform": "api", "name": "x"},
        {"platform": "shopify", "name": ""},
        {"platform": "shopify", "name": "   "},
        {"platform": "shopify", "name": "nul\u0000byte"},
        {"platform": "shopify", "name": "x", "store_country": "france"},
        {"platform": "shopify", "name": "x", "token": "abc"},
    ):
        response = await client.post("/v1/connectors", json=body, headers=tenant.admin)
        assert response.status_code == 422, body
    listed = (await client.get("/v1/connectors", headers=tenant.admin)).json()
    assert listed == [], "nothing stored"


async def test_duplicate_store_is_409(
    client: httpx.AsyncClient, tenant: TenantKeys, other_tenant: TenantKeys
) -> None:
    first = await create(client, tenant, platform="bigcommerce", name="a", store="abc123")
    assert first.status_code == 201
    again = await create(client, tenant, platform="bigcommerce", name="b", store="abc123")
    assert again.status_code == 409 and again.headers["content-type"] == PROBLEM
    assert again.json()["connector_id"] == first.json()["id"]
    # another platform, or another tenant, may use the same name
    assert (
        await create(client, other_tenant, platform="bigcommerce", name="a", store="abc123")
    ).status_code == 201
    shop = await create(client, tenant, platform="shopify", name="s", store="abc.myshopify.com")
    taken = await client.patch(
        f"/v1/connectors/{shop.json()['id']}",
        json={"store": "ABC.myshopify.com"},
        headers=tenant.admin,
    )
    assert taken.status_code == 200  # the same store, normalized
    other = await create(client, tenant, platform="shopify", name="t", store="def.myshopify.com")
    clash = await client.patch(
        f"/v1/connectors/{other.json()['id']}",
        json={"store": "abc.myshopify.com"},
        headers=tenant.admin,
    )
    assert clash.status_code == 409


async def test_another_tenants_connector_is_404(
    client: httpx.AsyncClient, tenant: TenantKeys, other_tenant: TenantKeys
) -> None:
    theirs = (
        await create(
            client, other_tenant, platform="shopify", name="x", store="globex.myshopify.com"
        )
    ).json()
    url = f"/v1/connectors/{theirs['id']}"
    assert (await client.get(url, headers=tenant.admin)).status_code == 404
    assert (await client.patch(url, json={"name": "mine"}, headers=tenant.admin)).status_code == 404
    assert (await client.delete(url, headers=tenant.admin)).status_code == 404
    put = await client.put(
        f"{url}/bigcommerce/credentials",
        json={"access_token": "x" * 31, "store_hash": "abc"},
        headers=tenant.admin,
    )
    assert put.status_code == 404
    assert (await client.get("/v1/connectors", headers=tenant.admin)).json() == []
    still = await client.get(url, headers=other_tenant.admin)
    assert still.status_code == 200 and still.json()["name"] == "x"
    assert (
        await client.get(f"/v1/connectors/{uuid.uuid4()}", headers=tenant.admin)
    ).status_code == 404


async def test_connectors_need_an_admin_key(client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    async with db.tenant_transaction(tenant.tenant_id) as session:
        _, token = await tenants.create_key(session, tenant.tenant_id, [Scope.lookup])
    lookup = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/v1/connectors", headers=lookup)).status_code == 403
    assert (await client.get("/v1/connectors")).status_code == 401


async def test_delete_purges_the_connectors_identity_links(
    client: httpx.AsyncClient, tenant: TenantKeys, owner_conn
) -> None:
    connector = (
        await create(client, tenant, platform="bigcommerce", name="x", store="purge1")
    ).json()
    owner_conn.execute(
        "INSERT INTO identity_links (tenant_id, kind, key, key_version, connector_id, customer_id)"
        " VALUES (%s, 1, %s, 1, %s, '42')",
        (tenant.tenant_id, b"k" * 32, connector["id"]),
    )
    response = await client.delete(f"/v1/connectors/{connector['id']}", headers=tenant.admin)
    assert response.status_code == 204
    left = owner_conn.execute(
        "SELECT count(*) FROM identity_links WHERE connector_id = %s", (connector["id"],)
    ).fetchone()
    assert left == (0,)


async def test_store_cannot_change_once_granted(
    client: httpx.AsyncClient, tenant: TenantKeys, owner_conn
) -> None:
    connector = (
        await create(client, tenant, platform="bigcommerce", name="x", store="first1")
    ).json()
    owner_conn.execute("UPDATE connectors SET state = 'granted' WHERE id = %s", (connector["id"],))
    response = await client.patch(
        f"/v1/connectors/{connector['id']}", json={"store": "second2"}, headers=tenant.admin
    )
    assert response.status_code == 409
    renamed = await client.patch(
        f"/v1/connectors/{connector['id']}", json={"name": "renamed"}, headers=tenant.admin
    )
    assert renamed.status_code == 200 and renamed.json()["store"] == "first1"


async def test_credentials_are_reencrypted_after_a_key_rotation(
    client: httpx.AsyncClient, tenant: TenantKeys, owner_conn, monkeypatch
) -> None:
    from athos_identity.connectors import service
    from athos_identity.connectors.models import CredentialKind
    from athos_identity.settings import get_settings

    connector_id = (
        await create(client, tenant, platform="shopify", name="s", store="rot.myshopify.com")
    ).json()["id"]
    async with db.tenant_transaction(tenant.tenant_id) as session:
        connector = await service.get_connector(session, tenant.tenant_id, uuid.UUID(connector_id))
        hint = await service.store_credential(
            session, connector, CredentialKind.shopify_access, "shpat_" + "s" * 32
        )
    assert hint == "…ssss"
    before = owner_conn.execute(
        "SELECT ciphertext, key_version FROM connector_credentials WHERE connector_id = %s",
        (connector_id,),
    ).fetchone()
    assert before[1] == 1

    monkeypatch.setattr(get_settings(), "credentials_key_version", 2)
    async with db.tenant_transaction(tenant.tenant_id) as session:
        assert await service.reencrypt_credentials(session, tenant.tenant_id) == 1
    async with db.tenant_transaction(tenant.tenant_id) as session:
        assert await service.reencrypt_credentials(session, tenant.tenant_id) == 0
        connector = await service.get_connector(session, tenant.tenant_id, uuid.UUID(connector_id))
        secret = await service.read_credential(session, connector, CredentialKind.shopify_access)
    assert secret == "shpat_" + "s" * 32
    after = owner_conn.execute(
        "SELECT ciphertext, key_version FROM connector_credentials WHERE connector_id = %s",
        (connector_id,),
    ).fetchone()
    assert after[1] == 2 and bytes(after[0])[1:3] == b"\x00\x02" and after[0] != before[0]
    listed = (await client.get("/v1/connectors", headers=tenant.admin)).json()
    assert listed[0]["credential_hint"] == "…ssss"
