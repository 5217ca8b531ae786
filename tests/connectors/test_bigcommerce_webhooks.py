"""BigCommerce hooks: real deliveries from the sandbox, secret checks, deduplication."""

from __future__ import annotations

from typing import Any

import httpx

from athos_identity.connectors.bigcommerce import service as bigcommerce
from athos_identity.settings import get_settings

HEADER = bigcommerce.WEBHOOK_SECRET_HEADER

pytest_plugins = ["bigcommerce_fixtures"]  # fixtures: bc_sandbox, bc_store, ...


async def granted_connector(
    client: httpx.AsyncClient, tenant: Any, store: Any, name: str = "BC"
) -> str:
    created = await client.post(
        "/v1/connectors", json={"platform": "bigcommerce", "name": name}, headers=tenant.admin
    )
    connector_id = str(created.json()["id"])
    saved = await client.put(
        f"/v1/connectors/{connector_id}/bigcommerce/credentials",
        json={"access_token": store.token, "api_path": store.api_path},
        headers=tenant.admin,
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["webhooks_registered"] is True
    return connector_id


def deliveries(owner_conn: Any, connector_id: str) -> list[tuple[Any, ...]]:
    return owner_conn.execute(
        "SELECT topic, resource_type, resource_id, processed_at FROM webhook_deliveries"
        " WHERE connector_id = %s ORDER BY received_at",
        (connector_id,),
    ).fetchall()


async def test_sandbox_delivery_is_authenticated_recorded_once(
    client: httpx.AsyncClient, tenant: Any, other_tenant: Any, bc_store: Any,
    bc_webhook_sink: Any, owner_conn: Any, monkeypatch: Any,
) -> None:  # fmt: skip
    monkeypatch.setattr(get_settings(), "public_url", bc_webhook_sink.url)
    connector_id = await granted_connector(client, tenant, bc_store)

    # a change in the store makes BigCommerce (the sandbox) POST to our public URL
    with bc_store.sandbox.client() as sandbox:
        sandbox.patch(
            f"/sandbox/bigcommerce/stores/{bc_store.store_hash}/customers/3",
            json={"first_name": "Renamed"},
        ).raise_for_status()
    [delivery] = bc_webhook_sink.wait_for(1)
    path = f"/v1/webhooks/bigcommerce/{connector_id}"
    assert delivery.path == path
    payload = delivery.json()
    assert payload["scope"] == "store/customer/updated" and payload["data"]["id"] == 3

    # replayed into the service exactly as received
    headers = {"Content-Type": "application/json", HEADER: delivery.headers[HEADER]}
    first = await client.post(path, content=delivery.body, headers=headers)
    assert first.status_code == 200 and first.json() == {"status": "recorded"}
    again = await client.post(path, content=delivery.body, headers=headers)
    assert again.status_code == 200 and again.json() == {"status": "duplicate"}
    assert deliveries(owner_conn, connector_id) == [
        ("store/customer/updated", "customer", "3", None)
    ]

    # a later event on the same customer has the same `hash` but is a new delivery
    later = {**payload, "created_at": payload["created_at"] + 60}
    third = await client.post(path, json=later, headers=headers)
    assert third.json() == {"status": "recorded"}
    assert len(deliveries(owner_conn, connector_id)) == 2


async def test_wrong_missing_or_foreign_secrets_get_401(
    client: httpx.AsyncClient, tenant: Any, other_tenant: Any, bc_store: Any, bc_settings: Any,
    owner_conn: Any,
) -> None:  # fmt: skip
    connector_id = await granted_connector(client, tenant, bc_store)
    secret = bc_store.hooks()[0]["headers"][HEADER]
    path = f"/v1/webhooks/bigcommerce/{connector_id}"
    body = {
        "scope": "store/order/created", "store_id": "1", "data": {"type": "order", "id": 101},
        "hash": "abc", "created_at": 1, "producer": f"stores/{bc_store.store_hash}",
    }  # fmt: skip

    # another tenant's connector on its own store, with its own secret
    store_hash = bc_settings.unique("w")
    with bc_settings.client() as sandbox:
        sandbox.post("/sandbox/bigcommerce/stores",
                     json={"store_hash": store_hash, "customers": 1, "orders": 1,
                           "plan": "unlimited"}).raise_for_status()  # fmt: skip
    other_store = type(bc_store)(bc_settings, store_hash, "")
    other_store.token = other_store.new_account(
        ["store_v2_customers_read_only", "store_v2_orders_read_only"]
    )
    theirs = await granted_connector(client, other_tenant, other_store)
    their_secret = other_store.hooks()[0]["headers"][HEADER]

    forged_tenant = secret.replace(tenant.tenant_id.hex, other_tenant.tenant_id.hex)
    for headers in (
        {},
        {HEADER: ""},
        {HEADER: "nonsense"},
        {HEADER: secret[:-1] + ("A" if secret[-1] != "A" else "B")},
        {HEADER: their_secret},  # valid, but for another connector
        {HEADER: forged_tenant},
        {"Authorization": f"Bearer {tenant.admin_key}"},  # an API key is not a hook secret
    ):
        response = await client.post(path, json=body, headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["content-type"] == "application/problem+json"
        assert secret not in response.text
    # their secret works on their connector only
    assert (await client.post(f"/v1/webhooks/bigcommerce/{theirs}", json=body,
                              headers={HEADER: their_secret})).status_code == 200  # fmt: skip
    ok = await client.post(path, json=body, headers={HEADER: secret})
    assert ok.status_code == 200 and ok.json() == {"status": "recorded"}
    assert deliveries(owner_conn, connector_id) == [("store/order/created", "order", "101", None)]

    # garbage bodies with a good secret: 400, nothing recorded
    bad = await client.post(path, content=b"{not json", headers={HEADER: secret})
    assert bad.status_code == 400
    ignored = await client.post(path, json={"scope": "store/product/updated", "hash": "x"},
                                headers={HEADER: secret})  # fmt: skip
    assert ignored.json() == {"status": "ignored"}
    assert len(deliveries(owner_conn, connector_id)) == 1


async def test_hooks_stop_authenticating_after_credentials_are_deleted(
    client: httpx.AsyncClient, tenant: Any, bc_store: Any
) -> None:
    connector_id = await granted_connector(client, tenant, bc_store)
    secret = bc_store.hooks()[0]["headers"][HEADER]
    await client.delete(
        f"/v1/connectors/{connector_id}/bigcommerce/credentials", headers=tenant.admin
    )
    body = {"scope": "store/order/created", "data": {"type": "order", "id": 1}, "hash": "h"}
    response = await client.post(
        f"/v1/webhooks/bigcommerce/{connector_id}", json=body, headers={HEADER: secret}
    )
    assert response.status_code == 401
