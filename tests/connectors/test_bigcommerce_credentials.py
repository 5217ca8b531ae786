"""BigCommerce token paste against the sandbox: validation, scopes, swap, revocation, secrecy."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import httpx
import pytest

from athos_identity import db
from athos_identity.connectors import service as connectors
from athos_identity.connectors.bigcommerce import service as bigcommerce
from athos_identity.connectors.bigcommerce.access import connector_client
from athos_identity.connectors.bigcommerce.client import CredentialRejected
from athos_identity.connectors.models import CredentialKind
from athos_identity.settings import get_settings

# Fixtures come from conftest.py; nothing is imported from it (the name "conftest" is shared
# by several directories of the test tree).
TenantKeys = Any
PROBLEM = "application/problem+json"
CUSTOMERS = "store_v2_customers_read_only"
ORDERS = "store_v2_orders_read_only"

pytest_plugins = ["bigcommerce_fixtures"]  # fixtures: bc_sandbox, bc_store, ...


async def new_connector(
    client: httpx.AsyncClient, tenant: TenantKeys, store: str | None = None
) -> str:
    body: dict[str, Any] = {"platform": "bigcommerce", "name": "BC"}
    if store:
        body["store"] = store
    response = await client.post("/v1/connectors", json=body, headers=tenant.admin)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def put(
    client: httpx.AsyncClient, tenant: TenantKeys, connector_id: str, **body: object
) -> httpx.Response:
    return await client.put(
        f"/v1/connectors/{connector_id}/bigcommerce/credentials", json=body, headers=tenant.admin
    )


def credential_rows(owner_conn: Any, connector_id: str) -> list[tuple[Any, ...]]:
    return owner_conn.execute(
        "SELECT kind, ciphertext, key_version, hint FROM connector_credentials"
        " WHERE connector_id = %s",
        (connector_id,),
    ).fetchall()


async def stored_token(tenant: TenantKeys, connector_id: str) -> str | None:
    async with db.tenant_transaction(tenant.tenant_id) as session:
        connector = await connectors.get_connector(
            session, tenant.tenant_id, uuid.UUID(connector_id)
        )
        return await connectors.read_credential(
            session, connector, CredentialKind.bigcommerce_token
        )


async def test_full_scope_token_is_saved_encrypted(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    bc_store: Any,
    owner_conn: Any,
    pg_dump: Any,
    caplog: Any,
) -> None:
    caplog.set_level(logging.DEBUG)
    connector_id = await new_connector(client, tenant)
    response = await put(
        client, tenant, connector_id, access_token=bc_store.token, api_path=bc_store.api_path
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scopes"] == ["customers", "orders", "products", "content", "themes"]
    assert body["missing_optional_permissions"] == [] and body["warnings"] == []
    assert body["webhooks_registered"] is True and body["replaced_previous_token"] is False
    connector = body["connector"]
    assert connector["state"] == "granted" and connector["store"] == bc_store.store_hash
    assert connector["credential_hint"] == "…" + bc_store.token[-4:]
    assert sorted(connector["scopes"]) == sorted(body["scopes"])

    # stored encrypted, versioned, with its hint; decrypts to the token
    [(kind, ciphertext, key_version, hint)] = credential_rows(owner_conn, connector_id)
    assert kind == "bigcommerce_token" and key_version == 1 and hint == "…" + bc_store.token[-4:]
    assert bc_store.token.encode() not in bytes(ciphertext)
    assert await stored_token(tenant, connector_id) == bc_store.token

    # the token is nowhere in clear: responses, a full dump, a row scan, the logs
    listed = await client.get("/v1/connectors", headers=tenant.admin)
    for text in (response.text, listed.text, pg_dump(), caplog.text):
        assert bc_store.token not in text
        assert bc_store.token[:-4] not in text
    rows = owner_conn.execute(
        "SELECT string_agg(t::text, ' ') FROM (SELECT * FROM connector_credentials) t"
    ).fetchone()[0]
    assert bc_store.token not in rows and bc_store.token.encode().hex() not in rows

    # hooks for customers and orders, pointing at us, with a secret header
    hooks = bc_store.hooks()
    assert sorted(h["scope"] for h in hooks) == ["store/customer/*", "store/order/*"]
    assert {h["destination"] for h in hooks} == {bigcommerce.webhook_destination(connector_id)}
    secrets = {h["headers"][bigcommerce.WEBHOOK_SECRET_HEADER] for h in hooks}
    assert len(secrets) == 1
    secret = secrets.pop()
    assert secret not in pg_dump(), "only the secret's hash is stored"


async def test_api_path_with_or_without_slash_and_store_hash(
    client: httpx.AsyncClient, tenant: TenantKeys, bc_store: Any
) -> None:
    variants = [
        {"api_path": f"https://api.bigcommerce.com/stores/{bc_store.store_hash}/v3/"},
        {"api_path": f"  https://api.bigcommerce.com/stores/{bc_store.store_hash}/v3  "},
        {"api_path": f"api.bigcommerce.com/stores/{bc_store.store_hash}/v2"},
        {"store_hash": bc_store.store_hash},
        {  # the sandbox prints API paths under its own address
            "api_path": f"{bc_store.sandbox.url}/bigcommerce/stores/{bc_store.store_hash}/v3/"
        },
    ]
    connector_id = await new_connector(client, tenant)
    for variant in variants:
        response = await put(client, tenant, connector_id, access_token=bc_store.token, **variant)
        assert response.status_code == 200, (variant, response.text)
        assert response.json()["connector"]["store"] == bc_store.store_hash
    # the token pasted with the surrounding whitespace of a copy is accepted as well
    response = await put(
        client, tenant, connector_id, access_token=f"  {bc_store.token}\n",
        store_hash=bc_store.store_hash,
    )  # fmt: skip
    assert response.status_code == 200
    assert await stored_token(tenant, connector_id) == bc_store.token


async def test_missing_customers_is_rejected_naming_the_permission(
    client: httpx.AsyncClient, tenant: TenantKeys, bc_store: Any, owner_conn: Any
) -> None:
    connector_id = await new_connector(client, tenant)
    no_customers = bc_store.new_account([ORDERS, "store_v2_products_read_only"])
    response = await put(
        client, tenant, connector_id, access_token=no_customers, api_path=bc_store.api_path
    )
    assert response.status_code == 422 and response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["missing_permissions"] == ["Customers: Read-only"]
    assert "Customers: Read-only" in body["detail"] and "Orders" not in body["detail"]
    assert no_customers not in response.text

    neither = bc_store.new_account(["store_v2_products_read_only"])
    response = await put(
        client, tenant, connector_id, access_token=neither, api_path=bc_store.api_path
    )
    assert response.json()["missing_permissions"] == ["Customers: Read-only", "Orders: Read-only"]

    assert credential_rows(owner_conn, connector_id) == []
    connector = (await client.get(f"/v1/connectors/{connector_id}", headers=tenant.admin)).json()
    assert connector["state"] == "not_granted" and connector["store"] is None
    assert bc_store.hooks() == []


async def test_missing_optional_scopes_are_saved_with_warnings(
    client: httpx.AsyncClient, tenant: TenantKeys, bc_store: Any
) -> None:
    connector_id = await new_connector(client, tenant, bc_store.store_hash)
    minimal = bc_store.new_account([CUSTOMERS, ORDERS])
    response = await put(client, tenant, connector_id, access_token=minimal)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scopes"] == ["customers", "orders"]
    assert body["missing_optional_permissions"] == [
        "Products: Read-only", "Content: Read-only", "Themes: Read-only",
    ]  # fmt: skip
    assert len(body["warnings"]) == 3 and body["connector"]["warnings"] == body["warnings"]
    assert body["connector"]["state"] == "granted"


async def test_bad_input_is_rejected_precisely_and_stores_nothing(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    bc_store: Any,
    owner_conn: Any,
    bc_settings: Any,
) -> None:
    connector_id = await new_connector(client, tenant)
    token = bc_store.token
    other_hash = bc_settings.unique("o")
    with bc_settings.client() as sandbox:
        sandbox.post("/sandbox/bigcommerce/stores", json={"store_hash": other_hash,
                     "customers": 1, "orders": 1}).raise_for_status()  # fmt: skip
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"access_token": "", "api_path": bc_store.api_path}, "body.access_token", "empty"),
        ({"access_token": "   \t", "api_path": bc_store.api_path}, "body.access_token", "empty"),
        ({"access_token": token[:10] + " " + token[10:], "api_path": bc_store.api_path},
         "body.access_token", "spaces"),
        ({"access_token": token, "api_path": f"https://evil.example.com/stores/{bc_store.store_hash}/v3/"},
         "body.api_path", "api.bigcommerce.com"),
        ({"access_token": token, "api_path": f"http://api.bigcommerce.com/stores/{bc_store.store_hash}/v3/"},
         "body.api_path", "API path"),
        ({"access_token": token, "api_path": "https://api.bigcommerce.com/stores/nosuch404/v3"},
         "body.api_path", "no store with hash nosuch404"),
        ({"access_token": token, "api_path": "https://[api.bigcommerce.com/stores/x/v3/"},
         "body.api_path", "API path"),
        ({"access_token": token, "api_path": "https://api.bigcommerce.com/v3/"},
         "body.api_path", "API path"),
        ({"access_token": token, "store_hash": "ABC/../x"}, "body.store_hash", "store hash"),
        ({"access_token": token, "api_path": "https://api.bigcommerce.com/stores/Bad Hash/v3/"},
         "body.api_path", "store hash"),
        ({"access_token": token}, "body.api_path", "API path"),
        ({"access_token": token, "api_path": f"https://api.bigcommerce.com/stores/{other_hash}/v3/"},
         "body.access_token", "another store"),
        ({"access_token": "x" * 31, "api_path": bc_store.api_path},
         "body.access_token", "did not accept"),
        ({"access_token": token, "api_path": bc_store.api_path, "store_hash": other_hash},
         "body.store_hash", "differs"),
    ]  # fmt: skip
    for body, field, words in cases:
        response = await put(client, tenant, connector_id, **body)
        assert response.status_code in (400, 422), (body, response.text)
        assert response.headers["content-type"] == PROBLEM
        problem = response.json()
        assert problem["errors"][0]["field"] == field, (body, problem)
        assert words in problem["detail"], (body, problem["detail"])
        assert token not in response.text and token[:10] not in response.text
    assert credential_rows(owner_conn, connector_id) == []
    connector = (await client.get(f"/v1/connectors/{connector_id}", headers=tenant.admin)).json()
    assert connector["state"] == "not_granted" and connector["store"] is None
    assert bc_store.hooks() == []


async def test_credentials_for_another_store_than_the_connectors(
    client: httpx.AsyncClient, tenant: TenantKeys, bc_store: Any
) -> None:
    connector_id = await new_connector(client, tenant, "zzz999")
    response = await put(
        client, tenant, connector_id, access_token=bc_store.token, api_path=bc_store.api_path
    )
    assert response.status_code == 422
    assert "this connector is for store zzz999" in response.json()["detail"]
    # and a store that already has a connector of this tenant
    taken = await new_connector(client, tenant, bc_store.store_hash)
    fresh = await new_connector(client, tenant)
    clash = await put(
        client, tenant, fresh, access_token=bc_store.token, api_path=bc_store.api_path
    )
    assert clash.status_code == 409 and clash.json()["connector_id"] == taken


async def test_token_swap_keeps_data_and_reregisters_hooks(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    bc_store: Any,
    owner_conn: Any,
    bc_webhook_sink: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(get_settings(), "public_url", bc_webhook_sink.url)
    connector_id = await new_connector(client, tenant)
    first = await put(
        client, tenant, connector_id, access_token=bc_store.token, api_path=bc_store.api_path
    )
    assert first.status_code == 200
    old_secret = bc_store.hooks()[0]["headers"][bigcommerce.WEBHOOK_SECRET_HEADER]
    owner_conn.execute(
        "INSERT INTO identity_links (tenant_id, kind, key, key_version, connector_id, customer_id)"
        " VALUES (%s, 1, %s, 1, %s, '7')",
        (tenant.tenant_id, b"k" * 32, connector_id),
    )

    # a bad replacement changes nothing: the old token stays in use
    bad = bc_store.new_account(["store_v2_products_read_only"])
    refused = await put(client, tenant, connector_id, access_token=bad, api_path=bc_store.api_path)
    assert refused.status_code == 422
    assert await stored_token(tenant, connector_id) == bc_store.token

    new_token = bc_store.new_account([CUSTOMERS, ORDERS, "store_v2_products_read_only"])
    swapped = await put(
        client, tenant, connector_id, access_token=new_token, store_hash=bc_store.store_hash
    )
    assert swapped.status_code == 200, swapped.text
    body = swapped.json()
    assert body["replaced_previous_token"] is True
    assert body["connector"]["credential_hint"] == "…" + new_token[-4:]
    assert body["scopes"] == ["customers", "orders", "products"]
    assert await stored_token(tenant, connector_id) == new_token
    assert len(credential_rows(owner_conn, connector_id)) == 1
    links = owner_conn.execute(
        "SELECT count(*) FROM identity_links WHERE connector_id = %s", (connector_id,)
    ).fetchone()
    assert links == (1,), "data is kept across a token swap"
    hooks = bc_store.hooks()
    assert len(hooks) == 2, "old hooks replaced, not duplicated"
    new_secrets = {h["headers"][bigcommerce.WEBHOOK_SECRET_HEADER] for h in hooks}
    assert old_secret not in new_secrets and len(new_secrets) == 1

    # the merchant then deletes the old API account: the hooks are the new account's, so
    # they survive it, and changes keep arriving with the new secret
    bc_store.delete_account(bc_store.token)
    async with httpx.AsyncClient(
        base_url=f"{bc_store.sandbox.url}/bigcommerce/stores/{bc_store.store_hash}",
        headers={"X-Auth-Token": new_token},
    ) as api:
        own = (await api.get("/v3/hooks")).json()["data"]
    assert sorted(h["scope"] for h in own) == ["store/customer/*", "store/order/*"]
    assert {h["destination"] for h in own} == {bigcommerce.webhook_destination(connector_id)}
    with bc_store.sandbox.client() as sandbox:
        sandbox.patch(
            f"/sandbox/bigcommerce/stores/{bc_store.store_hash}/customers/3",
            json={"first_name": "Renamed"},
        ).raise_for_status()
    [delivery] = bc_webhook_sink.wait_for(1)
    assert delivery.json()["data"] == {"type": "customer", "id": 3}
    delivered_to = f"/v1/webhooks/bigcommerce/{connector_id}"
    assert delivery.path == delivered_to
    secret = delivery.headers[bigcommerce.WEBHOOK_SECRET_HEADER]
    assert secret in new_secrets
    accepted = await client.post(
        delivered_to,
        content=delivery.body,
        headers={"Content-Type": "application/json", bigcommerce.WEBHOOK_SECRET_HEADER: secret},
    )
    assert accepted.status_code == 200 and accepted.json() == {"status": "recorded"}


async def test_401_mid_use_moves_to_needs_reauthorization(
    client: httpx.AsyncClient, tenant: TenantKeys, bc_store: Any
) -> None:
    connector_id = await new_connector(client, tenant)
    assert (await put(client, tenant, connector_id, access_token=bc_store.token,
                      api_path=bc_store.api_path)).status_code == 200  # fmt: skip
    bc_store.delete_account(bc_store.token)

    # a pull job's view: the client raises, the connector is marked, the job stops
    cid = uuid.UUID(connector_id)
    with pytest.raises(CredentialRejected) as caught:
        async with connector_client(tenant.tenant_id, cid) as bc:
            await bc.customers_page(limit=5)
    rejected = caught.value
    assert rejected.platform_status == 401 and bc_store.token not in str(rejected)
    connector = (await client.get(f"/v1/connectors/{connector_id}", headers=tenant.admin)).json()
    assert connector["state"] == "needs_reauthorization"
    assert "rejected the access token" in connector["last_error"]
    assert bc_store.token not in connector["last_error"]
    # later pulls don't run (nor retry forever)
    async with db.tenant_transaction(tenant.tenant_id) as session:
        try:
            await bigcommerce.open_client(session, tenant.tenant_id, cid)
        except connectors.ConnectorNotUsable as error:
            assert "needs new credentials" in error.detail
        else:
            raise AssertionError("a connector needing re-authorization gives no client")

    # a new token brings it back to granted
    new_token = bc_store.new_account([CUSTOMERS, ORDERS])
    again = await put(client, tenant, connector_id, access_token=new_token)
    assert again.status_code == 200 and again.json()["connector"]["state"] == "granted"
    assert again.json()["connector"]["last_error"] is None


async def test_check_endpoint_detects_a_deleted_account(
    client: httpx.AsyncClient, tenant: TenantKeys, bc_store: Any
) -> None:
    connector_id = await new_connector(client, tenant)
    await put(client, tenant, connector_id, access_token=bc_store.token, api_path=bc_store.api_path)
    url = f"/v1/connectors/{connector_id}/bigcommerce/check"
    ok = await client.post(url, headers=tenant.admin)
    assert ok.status_code == 200 and ok.json()["state"] == "granted"
    bc_store.delete_account(bc_store.token)
    checked = await client.post(url, headers=tenant.admin)
    assert checked.status_code == 200 and checked.json()["state"] == "needs_reauthorization"
    stored = (await client.get(f"/v1/connectors/{connector_id}", headers=tenant.admin)).json()
    assert stored["state"] == "needs_reauthorization", "the new state is committed"


async def test_delete_credentials_purges_and_stops(
    client: httpx.AsyncClient, tenant: TenantKeys, bc_store: Any, owner_conn: Any
) -> None:
    connector_id = await new_connector(client, tenant)
    await put(client, tenant, connector_id, access_token=bc_store.token, api_path=bc_store.api_path)
    owner_conn.execute(
        "INSERT INTO identity_links (tenant_id, kind, key, key_version, connector_id, customer_id)"
        " VALUES (%s, 2, %s, 1, %s, '9')",
        (tenant.tenant_id, b"p" * 32, connector_id),
    )
    response = await client.delete(
        f"/v1/connectors/{connector_id}/bigcommerce/credentials", headers=tenant.admin
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["state"] == "revoked" and body["credential_hint"] is None and body["scopes"] == []
    assert credential_rows(owner_conn, connector_id) == []
    links = owner_conn.execute(
        "SELECT count(*) FROM identity_links WHERE connector_id = %s", (connector_id,)
    ).fetchone()
    assert links == (0,)
    assert bc_store.hooks() == [], "our hooks are removed while the token still works"
    # the connector stays (history, settings); a new token grants it again
    again = await put(client, tenant, connector_id, access_token=bc_store.token)
    assert again.status_code == 200 and again.json()["connector"]["state"] == "granted"


async def test_shopify_connector_has_no_bigcommerce_credentials(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    response = await client.post(
        "/v1/connectors",
        json={"platform": "shopify", "name": "s", "store": "s1.myshopify.com"},
        headers=tenant.admin,
    )
    put_response = await put(
        client, tenant, response.json()["id"], access_token="a" * 31, store_hash="abc"
    )
    assert put_response.status_code == 409
