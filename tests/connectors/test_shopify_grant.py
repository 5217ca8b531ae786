"""Shopify Grant Access end to end against the sandbox, and every way a callback is refused."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from shopify_fixtures import (
    Shop,
    approve_in_browser,
    call_callback,
    callback_params,
    create_shopify_connector,
    grant,
    start_grant,
)

from athos_identity import db
from athos_identity.connectors import service as connectors
from athos_identity.connectors.shopify import client as shopify_client
from athos_identity.connectors.shopify import oauth, tokens
from athos_identity.connectors.shopify.client import CredentialRejected, ShopifyClient
from athos_identity.jobs import open_jobs

pytest_plugins = ["shopify_fixtures"]

TenantKeys = Any


def credential_rows(owner_conn: Any, connector_id: str) -> list[tuple[Any, ...]]:
    return owner_conn.execute(
        "SELECT kind, ciphertext, key_version, expires_at FROM connector_credentials"
        " WHERE connector_id = %s ORDER BY kind",
        (connector_id,),
    ).fetchall()


async def read_connector(client: httpx.AsyncClient, tenant: TenantKeys, cid: str) -> dict:
    response = await client.get(f"/v1/connectors/{cid}", headers=tenant.admin)
    assert response.status_code == 200
    return response.json()


async def access_token(tenant: TenantKeys, connector_id: str) -> str:
    async with db.tenant_transaction(tenant.tenant_id) as session:
        connector = await connectors.get_connector(
            session, tenant.tenant_id, uuid.UUID(connector_id)
        )
        return await tokens.shopify_access_token(session, connector)


def jump_sandbox_clock(shop: Shop, seconds: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """Time acceleration: the sandbox lives `seconds` ahead; the service's clock follows."""
    clock = shop.sandbox.state.clock
    factor = 20_000.0
    clock.set_factor(factor)
    time.sleep(seconds / factor)
    clock.set_factor(1.0)
    offset = clock.now() - time.time()
    monkeypatch.setattr(
        shopify_client, "utcnow", lambda: datetime.now(UTC) + timedelta(seconds=offset)
    )


def back_to_real_time(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    """Undo a jump (the sandbox is shared by the session; its clock has no rewind)."""
    clock = shop.sandbox.state.clock
    with clock._lock:
        clock._real_anchor, clock._virtual_anchor = time.monotonic(), time.time()
    monkeypatch.setattr(shopify_client, "utcnow", lambda: datetime.now(UTC))


@pytest.fixture
def rewind(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    yield
    back_to_real_time(shop, monkeypatch)


async def test_grant_refresh_revoke_end_to_end(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    shop: Shop,
    shopify_sink: Any,
    owner_conn: Any,
    pg_dump: Any,
    monkeypatch: pytest.MonkeyPatch,
    rewind: None,
) -> None:
    connector_id = await create_shopify_connector(client, tenant, shop.domain)

    # Grant Access: a state-bearing approval URL on the shop, asking for 90 days of orders
    started = await start_grant(client, tenant, connector_id, history_days=90)
    assert started["scopes"] == ["read_customers", "read_orders", "read_all_orders"]
    url = httpx.URL(started["authorize_url"])
    assert url.path == f"/shopify/{shop.domain}/admin/oauth/authorize"
    assert url.params["redirect_uri"] == f"{shopify_sink.url}/v1/shopify/oauth/callback"
    state = url.params["state"]
    assert state.startswith("shst_" + tenant.tenant_id.hex)
    assert state not in pg_dump(), "only the state's hash is stored"

    # the merchant approves in the browser; Shopify redirects back to the callback
    landed = await call_callback(
        client, callback_params(approve_in_browser(shop.sandbox, started["authorize_url"]))
    )
    assert landed == {
        "shopify": "granted",
        "reason": "granted",
        "message": "Access granted.",
        "connector_id": connector_id,
    }
    connector = await read_connector(client, tenant, connector_id)
    assert connector["state"] == "granted" and connector["last_error"] is None
    assert connector["scopes"] == ["read_all_orders", "read_customers", "read_orders"]
    assert connector["store_country"] == "US" and connector["warnings"] == []

    # tokens stored encrypted, with their expiry; nowhere in clear
    rows = credential_rows(owner_conn, connector_id)
    assert [r[0] for r in rows] == ["shopify_access", "shopify_refresh"]
    assert all(r[2] == 1 and r[3] is not None for r in rows)
    [issued_access] = list(shop.store.access_tokens)
    [issued_refresh] = list(shop.store.refresh_tokens)
    dump = pg_dump()
    for secret in (issued_access, issued_refresh, shop.sandbox.state.config.shopify_client_secret):
        assert secret not in dump and secret[6:] not in dump
    assert await access_token(tenant, connector_id) == issued_access
    status = await client.get(f"/v1/connectors/{connector_id}/shopify", headers=tenant.admin)
    assert status.json()["api_version"] == "2026-10"
    assert issued_access not in status.text

    # webhooks subscribed to our public URL
    subscriptions = {(w.topic, w.uri) for w in shop.store.webhooks.values()}
    assert {t for t, _ in subscriptions} == {
        "APP_UNINSTALLED", "CUSTOMERS_CREATE", "CUSTOMERS_UPDATE", "CUSTOMERS_DELETE",
        "ORDERS_CREATE", "ORDERS_UPDATED", "ORDERS_DELETE",
    }  # fmt: skip
    assert {u for _, u in subscriptions} == {f"{shopify_sink.url}/v1/webhooks/shopify"}

    # a customer change arrives as a webhook: its identifiers are linked (hashed)
    shop.admin("PATCH", f"/customers/{shop.customer_ids(1)[0]}", json={"first_name": "R"})
    [delivery] = shopify_sink.wait_for(1)
    received = await client.post("/v1/webhooks/shopify", content=delivery.body,
                                 headers=delivery.headers)  # fmt: skip
    assert received.status_code == 200 and received.json()["status"] == "processed"
    links = owner_conn.execute(
        "SELECT count(*) FROM identity_links WHERE connector_id = %s", (connector_id,)
    ).fetchone()[0]
    assert links >= 1

    # an hour later (sandbox time) the access token is dead at Shopify ...
    jump_sandbox_clock(shop, 3700, monkeypatch)
    async with ShopifyClient(shop.domain, issued_access) as stale:
        with pytest.raises(CredentialRejected):
            await stale.query("{ shop { name } }")
    # ... and two concurrent readers get one refreshed token (one refresh, row-locked)
    first, second = await asyncio.gather(
        access_token(tenant, connector_id), access_token(tenant, connector_id)
    )
    assert first == second != issued_access
    assert len(shop.store.refresh_tokens) == 2 and shop.store.refresh_tokens[issued_refresh].used
    async with ShopifyClient(shop.domain, first) as fresh:
        data = await fresh.query("{ shop { myshopifyDomain } }")
    assert data == {"shop": {"myshopifyDomain": shop.domain}}
    rotated = [t for t in shop.store.refresh_tokens if t != issued_refresh]
    assert rotated[0] not in pg_dump()
    assert await access_token(tenant, connector_id) == first  # fresh now: no new refresh

    # Revoke Authorization: Shopify refuses to revoke the required scopes the grant gave,
    # so the app is uninstalled; tokens and data gone here
    response = await client.post(f"/v1/connectors/{connector_id}/shopify/revoke",
                                 headers=tenant.admin)  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["remote"] == "uninstalled" and body["retry_remote"] is False
    assert sorted(body["revoked_scopes"]) == ["read_all_orders", "read_customers", "read_orders"]
    assert body["connector"]["state"] == "revoked" and body["connector"]["scopes"] == []
    assert body["purged"]["identity_links"] == links
    assert not shop.store.installed and not shop.store.granted_scopes
    assert credential_rows(owner_conn, connector_id) == []
    for table in ("identity_links", "webhook_deliveries", "shopify_oauth_states"):
        count = owner_conn.execute(
            f"SELECT count(*) FROM {table} WHERE connector_id = %s",
            (connector_id,),
        ).fetchone()[0]
        assert count == 0, table


async def test_invalid_grant_on_refresh_needs_reauthorization(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    shop: Shop,
    monkeypatch: pytest.MonkeyPatch,
    rewind: None,
) -> None:
    connector_id = await grant(client, tenant, shop)
    for refresh in shop.store.refresh_tokens.values():
        refresh.used = True  # e.g. rotated by another deployment with the same app
    jump_sandbox_clock(shop, 3700, monkeypatch)
    with pytest.raises(CredentialRejected) as raised:
        await access_token(tenant, connector_id)
    assert "invalid_grant" in raised.value.detail
    connector = await read_connector(client, tenant, connector_id)
    assert connector["state"] == "needs_reauthorization"
    assert "invalid_grant" in connector["last_error"]
    with pytest.raises(connectors.ConnectorNotUsable):
        await access_token(tenant, connector_id)

    # a new grant brings it back
    back_to_real_time(shop, monkeypatch)
    started = await start_grant(client, tenant, connector_id)
    landed = await call_callback(
        client, callback_params(approve_in_browser(shop.sandbox, started["authorize_url"]))
    )
    assert landed["shopify"] == "granted"
    assert (await read_connector(client, tenant, connector_id))["state"] == "granted"


async def revoke_while_shopify_is_down(
    client: httpx.AsyncClient, tenant: TenantKeys, shop: Shop, connector_id: str
) -> dict[str, Any]:
    with shop.sandbox.client() as sandbox:
        sandbox.post("/sandbox/faults", json={"platform": "shopify", "kind": "5xx", "count": 50,
                     "path_contains": shop.domain}).raise_for_status()  # fmt: skip
    try:
        response = await client.post(
            f"/v1/connectors/{connector_id}/shopify/revoke", headers=tenant.admin
        )
    finally:
        with shop.sandbox.client() as sandbox:
            sandbox.delete("/sandbox/faults", params={"platform": "shopify"})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def run_queued_revoke_retry(owner_conn: Any, connector_id: str) -> None:
    """The queued retry (it waits 30 s first) run now, by a real worker."""
    [(task, args)] = owner_conn.execute(
        "SELECT task_name, args FROM procrastinate_jobs WHERE status = 'todo'"
    ).fetchall()
    assert task == "shopify.retry_revoke" and args["connector_id"] == connector_id
    owner_conn.execute("UPDATE procrastinate_jobs SET scheduled_at = now() WHERE status = 'todo'")
    jobs = await open_jobs()
    await jobs.run_worker_async(
        queues=["hooks"], wait=False, install_signal_handlers=False, listen_notify=False
    )


async def test_revoke_with_shopify_unreachable_keeps_nothing_but_the_retry(
    client: httpx.AsyncClient, tenant: TenantKeys, shop: Shop, owner_conn: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    connector_id = await grant(client, tenant, shop)
    shop.admin("PATCH", "", json={})
    body = await revoke_while_shopify_is_down(client, tenant, shop, connector_id)
    assert body["remote"] == "failed"
    assert body["retry_remote"] is True and body["connector"]["state"] == "revoked"
    assert "revoke again" in body["connector"]["warnings"][0]
    assert "read_customers" in shop.store.granted_scopes  # Shopify still grants them
    # only the (encrypted) tokens stay, for the retry
    assert [r[0] for r in credential_rows(owner_conn, connector_id)] == [
        "shopify_access", "shopify_refresh",
    ]  # fmt: skip
    with pytest.raises(connectors.ConnectorNotUsable):
        await access_token(tenant, connector_id)

    # a job finishes it at Shopify once it answers again
    await run_queued_revoke_retry(owner_conn, connector_id)
    assert credential_rows(owner_conn, connector_id) == []
    assert not shop.store.installed  # the scopes were required ones: uninstalled
    again = await client.post(f"/v1/connectors/{connector_id}/shopify/revoke", headers=tenant.admin)
    assert again.status_code == 200 and again.json()["retry_remote"] is False


async def test_a_grant_made_while_a_revoke_retry_waits_is_left_alone(
    client: httpx.AsyncClient, tenant: TenantKeys, shop: Shop, owner_conn: Any
) -> None:
    connector_id = await grant(client, tenant, shop)
    assert (await revoke_while_shopify_is_down(client, tenant, shop, connector_id))["retry_remote"]
    # the merchant changes their mind and grants access again before the retry runs
    started = await start_grant(client, tenant, connector_id)
    landed = await call_callback(
        client, callback_params(approve_in_browser(shop.sandbox, started["authorize_url"]))
    )
    assert landed["shopify"] == "granted"
    token = await access_token(tenant, connector_id)

    await run_queued_revoke_retry(owner_conn, connector_id)
    assert (await read_connector(client, tenant, connector_id))["state"] == "granted"
    assert "read_customers" in shop.store.granted_scopes  # not revoked at Shopify
    assert await access_token(tenant, connector_id) == token


async def test_optional_scopes_are_revoked_alone_and_the_app_stays(
    client: httpx.AsyncClient, tenant: TenantKeys, shop: Shop
) -> None:
    shop.admin("PATCH", "", json={"required_scopes_revocable": True})  # plays optional scopes
    connector_id = await grant(client, tenant, shop)
    response = await client.post(
        f"/v1/connectors/{connector_id}/shopify/revoke", headers=tenant.admin
    )
    body = response.json()
    assert body["remote"] == "scopes_revoked" and body["retry_remote"] is False
    assert sorted(body["revoked_scopes"]) == ["read_customers", "read_orders"]
    assert shop.store.installed
    assert not shop.store.granted_scopes & {"read_customers", "read_orders"}


async def test_revoke_can_uninstall(
    client: httpx.AsyncClient, tenant: TenantKeys, shop: Shop
) -> None:
    connector_id = await grant(client, tenant, shop)
    response = await client.post(
        f"/v1/connectors/{connector_id}/shopify/revoke",
        json={"uninstall": True},
        headers=tenant.admin,
    )
    assert response.json()["remote"] == "uninstalled"
    assert not shop.store.installed


# --- every way a callback is refused ------------------------------------------------------


def resign(params: list[tuple[str, str]], secret: str, **changes: str) -> list[tuple[str, str]]:
    """The callback with some parameters changed and signed again (as only Shopify could)."""
    values = {k: v for k, v in params if k != "hmac"}
    values.update(changes)
    pairs = list(values.items())
    return [*pairs, ("hmac", oauth.sign_callback(pairs, secret))]


@pytest.fixture
async def pending(client: httpx.AsyncClient, tenant: TenantKeys, shop: Shop) -> dict[str, Any]:
    """A connector with an approval done at Shopify, its callback not yet delivered."""
    connector_id = await create_shopify_connector(client, tenant, shop.domain)
    started = await start_grant(client, tenant, connector_id)
    params = callback_params(approve_in_browser(shop.sandbox, started["authorize_url"]))
    return {"connector_id": connector_id, "params": params,
            "secret": shop.sandbox.state.config.shopify_client_secret}  # fmt: skip


async def assert_refused(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    pending: dict[str, Any],
    params: list[tuple[str, str]],
    reason: str,
    owner_conn: Any,
) -> dict[str, str]:
    landed = await call_callback(client, params)
    assert landed["shopify"] == "failed" and landed["reason"] == reason, landed
    assert pending["secret"] not in str(landed)
    assert credential_rows(owner_conn, pending["connector_id"]) == []
    connector = await read_connector(client, tenant, pending["connector_id"])
    assert connector["state"] == "not_granted" and connector["scopes"] == []
    return landed


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"hmac": "0" * 64}, "invalid_hmac"),
        ({"code": "forged"}, "invalid_hmac"),  # a parameter changed after Shopify signed
        ({"hmac": ""}, "missing_parameter"),
    ],
)
async def test_forged_or_missing_hmac(
    client: httpx.AsyncClient, tenant: TenantKeys, pending: dict[str, Any], owner_conn: Any,
    change: dict[str, str], reason: str,
) -> None:  # fmt: skip
    params = [(k, change.get(k, v)) for k, v in pending["params"]]
    await assert_refused(client, tenant, pending, params, reason, owner_conn)
    # the state was not consumed: the genuine callback still works afterwards
    landed = await call_callback(client, pending["params"])
    assert landed["shopify"] == "granted"


@pytest.mark.parametrize(
    "bad_shop",
    ["evil.com", "x.myshopify.com.evil.com", "x.myshopify.com/..", "X.myshopify.com",
     "x.myshopify.com\n", "-x.myshopify.com", "x.myshopify.com:443", "http://x.myshopify.com"],
)  # fmt: skip
async def test_shop_that_is_not_a_myshopify_domain(
    client: httpx.AsyncClient, tenant: TenantKeys, pending: dict[str, Any], owner_conn: Any,
    bad_shop: str,
) -> None:  # fmt: skip
    params = resign(pending["params"], pending["secret"], shop=bad_shop)
    await assert_refused(client, tenant, pending, params, "invalid_shop", owner_conn)


async def test_another_shop_than_the_connectors(
    client: httpx.AsyncClient, tenant: TenantKeys, pending: dict[str, Any], owner_conn: Any,
) -> None:  # fmt: skip
    params = resign(pending["params"], pending["secret"], shop="other-shop.myshopify.com")
    await assert_refused(client, tenant, pending, params, "shop_mismatch", owner_conn)


async def test_timestamp_a_day_old(
    client: httpx.AsyncClient, tenant: TenantKeys, pending: dict[str, Any], owner_conn: Any,
) -> None:  # fmt: skip
    day_old = str(int(time.time()) - 86_400)
    params = resign(pending["params"], pending["secret"], timestamp=day_old)
    await assert_refused(client, tenant, pending, params, "stale_timestamp", owner_conn)
    future = str(int(time.time()) + 3_600)
    params = resign(pending["params"], pending["secret"], timestamp=future)
    await assert_refused(client, tenant, pending, params, "stale_timestamp", owner_conn)


async def test_wrong_state(
    client: httpx.AsyncClient, tenant: TenantKeys, other_tenant: TenantKeys,
    pending: dict[str, Any], owner_conn: Any,
) -> None:  # fmt: skip
    secret = pending["secret"]
    garbage = resign(pending["params"], secret, state="not-ours")
    await assert_refused(client, tenant, pending, garbage, "invalid_state", owner_conn)
    unknown = resign(pending["params"], secret, state=oauth.new_state(tenant.tenant_id))
    await assert_refused(client, tenant, pending, unknown, "state_unknown", owner_conn)
    # the genuine state with another tenant's id in front is unknown under that tenant
    real = dict(pending["params"])["state"]
    moved = real.replace(tenant.tenant_id.hex, other_tenant.tenant_id.hex)
    params = resign(pending["params"], secret, state=moved)
    await assert_refused(client, tenant, pending, params, "state_unknown", owner_conn)


async def test_expired_state(
    client: httpx.AsyncClient, tenant: TenantKeys, pending: dict[str, Any], owner_conn: Any,
) -> None:  # fmt: skip
    owner_conn.execute(
        "UPDATE shopify_oauth_states SET expires_at = now() - interval '1 second'"
        " WHERE connector_id = %s",
        (pending["connector_id"],),
    )
    await assert_refused(client, tenant, pending, pending["params"], "state_expired", owner_conn)


async def test_reused_state_and_used_code(
    client: httpx.AsyncClient, tenant: TenantKeys, shop: Shop, pending: dict[str, Any],
    owner_conn: Any,
) -> None:  # fmt: skip
    connector_id = pending["connector_id"]
    assert (await call_callback(client, pending["params"]))["shopify"] == "granted"
    stored = credential_rows(owner_conn, connector_id)

    # the same callback again (a replay): the state was consumed
    landed = await call_callback(client, pending["params"])
    assert landed["reason"] == "state_used" and landed["connector_id"] == connector_id
    # the used code with a fresh, valid state: Shopify refuses the code
    started = await start_grant(client, tenant, connector_id)
    fresh_state = httpx.URL(started["authorize_url"]).params["state"]
    params = resign(pending["params"], pending["secret"], state=fresh_state,
                    timestamp=str(int(time.time())))  # fmt: skip
    landed = await call_callback(client, params)
    assert landed["reason"] == "code_rejected", landed
    assert credential_rows(owner_conn, connector_id) == stored  # nothing changed


async def test_fewer_scopes_than_asked(
    client: httpx.AsyncClient, tenant: TenantKeys, shop: Shop, owner_conn: Any
) -> None:
    shop.admin("PATCH", "", json={"withhold_scopes": ["read_orders"]})
    connector_id = await create_shopify_connector(client, tenant, shop.domain)
    started = await start_grant(client, tenant, connector_id)
    params = callback_params(approve_in_browser(shop.sandbox, started["authorize_url"]))
    pending = {"connector_id": connector_id, "params": params,
               "secret": shop.sandbox.state.config.shopify_client_secret}  # fmt: skip
    landed = await assert_refused(client, tenant, pending, params, "scopes_missing", owner_conn)
    assert "read_orders" in landed["message"]


async def test_previous_client_secret_still_verifies_callbacks(
    client: httpx.AsyncClient, tenant: TenantKeys, pending: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from pydantic import SecretStr

    from athos_identity.settings import get_settings

    settings = get_settings()
    monkeypatch.setattr(settings, "shopify_previous_client_secret", settings.shopify_client_secret)
    monkeypatch.setattr(settings, "shopify_client_secret", SecretStr("shpss_new-secret"))
    # the token exchange needs the secret Shopify knows: put it back once the HMAC passed
    from athos_identity.connectors.shopify import callback

    original = callback.exchange_code

    async def exchange_with_old_secret(shop: str, code: str) -> Any:
        monkeypatch.setattr(settings, "shopify_client_secret", SecretStr(pending["secret"]))
        return await original(shop, code)

    monkeypatch.setattr(callback, "exchange_code", exchange_with_old_secret)
    assert (await call_callback(client, pending["params"]))["shopify"] == "granted"


async def test_grant_needs_admin_a_shopify_connector_and_a_store(
    client: httpx.AsyncClient, tenant: TenantKeys, other_tenant: TenantKeys, shop: Shop
) -> None:
    connector_id = await create_shopify_connector(client, tenant, shop.domain)
    path = f"/v1/connectors/{connector_id}/shopify/grant"
    assert (await client.post(path)).status_code == 401
    assert (await client.post(path, headers=other_tenant.admin)).status_code == 404
    no_store = await client.post(
        "/v1/connectors", json={"platform": "shopify", "name": "later"}, headers=tenant.admin
    )
    response = await client.post(
        f"/v1/connectors/{no_store.json()['id']}/shopify/grant", headers=tenant.admin
    )
    assert response.status_code == 409 and "store" in response.json()["detail"]
