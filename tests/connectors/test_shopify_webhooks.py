"""Shopify webhooks: real signed deliveries from the sandbox replayed into the service.

Signature checks (bad, missing, rotation), deduplication, the record topics, app/uninstalled
and the three mandatory compliance topics with Shopify's documented payloads.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from shopify_fixtures import Shop, grant

from athos_identity.settings import get_settings

pytest_plugins = ["shopify_fixtures"]

PATH = "/v1/webhooks/shopify"


def replay_headers(delivery: Any) -> dict[str, str]:
    return {
        k: v
        for k, v in delivery.headers.items()
        if k.lower().startswith("x-shopify-") or k.lower() == "content-type"
    }


async def replay(client: httpx.AsyncClient, delivery: Any) -> httpx.Response:
    return await client.post(PATH, content=delivery.body, headers=replay_headers(delivery))


def sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def links_of(owner_conn: Any, connector_id: str, customer_id: str | None = None) -> int:
    query = "SELECT count(*) FROM identity_links WHERE connector_id = %s"
    args: tuple[Any, ...] = (connector_id,)
    if customer_id is not None:
        query += " AND customer_id = %s"
        args += (customer_id,)
    return int(owner_conn.execute(query, args).fetchone()[0])


def shop_webhook(shop: Shop, topic: str, payload: dict[str, Any], secret: str) -> tuple:
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": sign(body, secret),
        "X-Shopify-Shop-Domain": shop.domain,
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
    }
    return body, headers


async def test_customer_webhooks_link_dedupe_and_delete(
    client: httpx.AsyncClient, tenant: Any, shop: Shop, shopify_sink: Any, owner_conn: Any,
    pg_dump: Any,
) -> None:  # fmt: skip
    connector_id = await grant(client, tenant, shop)
    first, second = shop.customer_ids(2)
    created = shop.admin("POST", "/customers", json={}).json()
    shop.admin("PATCH", f"/customers/{first}", json={"first_name": "Renamed"})
    deliveries = shopify_sink.wait_for(2)
    assert {d.headers["X-Shopify-Topic"] for d in deliveries} == {
        "customers/create", "customers/update",
    }  # fmt: skip
    for delivery in deliveries:
        response = await replay(client, delivery)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "processed"
    assert links_of(owner_conn, connector_id, str(first)) >= 1
    assert links_of(owner_conn, connector_id, str(created["id"])) >= 0

    # the same delivery again (Shopify retries): nothing changes
    before = links_of(owner_conn, connector_id)
    again = await replay(client, deliveries[0])
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert links_of(owner_conn, connector_id) == before
    # the raw e-mail of the webhook is nowhere
    [updated] = [d for d in deliveries if d.headers["X-Shopify-Topic"] == "customers/update"]
    email = json.loads(updated.body)["email"]
    assert email and email not in pg_dump() and email.strip().lower() not in pg_dump()

    shop.admin("DELETE", f"/customers/{first}")
    [*_, deleted] = shopify_sink.wait_for(3)
    assert deleted.headers["X-Shopify-Topic"] == "customers/delete"
    assert (await replay(client, deleted)).json()["status"] == "processed"
    assert links_of(owner_conn, connector_id, str(first)) == 0

    # an order's webhook carries the whole order: stored as sales data at once, no PII
    order_id = next(shop.store.data.orders.iter_by_id()).id
    shop.admin("PATCH", f"/orders/{order_id}", json={"financial_status": "REFUNDED"})
    [*_, order] = shopify_sink.wait_for(4)
    assert order.headers["X-Shopify-Topic"] == "orders/updated"
    assert (await replay(client, order)).json()["status"] == "processed"
    stored = owner_conn.execute(
        "SELECT status, (SELECT count(*) FROM order_lines l WHERE l.order_id = o.order_id"
        "   AND l.connector_id = o.connector_id), email_key IS NOT NULL OR phone_key IS NOT NULL"
        " FROM orders o WHERE connector_id = %s AND order_id = %s",
        (connector_id, str(order_id)),
    ).fetchall()
    body = json.loads(order.body)
    assert stored == [("REFUNDED", len(body["line_items"]), bool(body["email"] or body["phone"]))]
    if body["email"]:
        assert body["email"] not in pg_dump()
    shop.admin("DELETE", f"/orders/{order_id}")
    [*_, gone] = shopify_sink.wait_for(5)
    assert gone.headers["X-Shopify-Topic"] == "orders/delete"
    assert (await replay(client, gone)).json()["status"] == "processed"
    assert not owner_conn.execute(
        "SELECT 1 FROM orders WHERE connector_id = %s AND order_id = %s",
        (connector_id, str(order_id)),
    ).fetchall()
    assert second  # a second customer exists, untouched
    assert links_of(owner_conn, connector_id, str(second)) == 0


async def test_bad_or_missing_signature_is_401_and_changes_nothing(
    client: httpx.AsyncClient, tenant: Any, shop: Shop, shopify_sink: Any, owner_conn: Any
) -> None:
    connector_id = await grant(client, tenant, shop)
    shop.admin("PATCH", f"/customers/{shop.customer_ids(1)[0]}", json={"first_name": "X"})
    [delivery] = shopify_sink.wait_for(1)
    headers = replay_headers(delivery)

    forged = {**headers, "X-Shopify-Hmac-Sha256": sign(delivery.body, "not-the-secret")}
    response = await client.post(PATH, content=delivery.body, headers=forged)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    missing = {k: v for k, v in headers.items() if k != "X-Shopify-Hmac-Sha256"}
    assert (await client.post(PATH, content=delivery.body, headers=missing)).status_code == 401
    tampered = delivery.body.replace(b'"id":', b'"id": ', 1)
    assert (await client.post(PATH, content=tampered, headers=headers)).status_code == 401
    assert links_of(owner_conn, connector_id) == 0
    assert (
        owner_conn.execute(
            "SELECT count(*) FROM webhook_deliveries WHERE connector_id = %s", (connector_id,)
        ).fetchone()[0]
        == 0
    )

    # compliance topics get the same 401 (Shopify's app review checks it)
    secret = shop.sandbox.state.config.shopify_client_secret
    body, signed = shop_webhook(shop, "shop/redact", {"shop_id": 1, "shop_domain": shop.domain},
                                secret)  # fmt: skip
    bad = {**signed, "X-Shopify-Hmac-Sha256": sign(body, secret + "x")}
    assert (await client.post(PATH, content=body, headers=bad)).status_code == 401
    connector = (await client.get(f"/v1/connectors/{connector_id}", headers=tenant.admin)).json()
    assert connector["state"] == "granted"


async def test_secret_rotation_accepts_current_and_previous(
    client: httpx.AsyncClient, tenant: Any, shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    await grant(client, tenant, shop)
    old = shop.sandbox.state.config.shopify_client_secret
    settings = get_settings()
    monkeypatch.setattr(settings, "shopify_client_secret", SecretStr("shpss_rotated-secret"))
    monkeypatch.setattr(settings, "shopify_previous_client_secret", SecretStr(old))
    payload = {"id": shop.customer_ids(1)[0], "email": "Rotated@Example.com", "phone": None}
    for secret in (old, "shpss_rotated-secret"):
        body, headers = shop_webhook(shop, "customers/update", payload, secret)
        response = await client.post(PATH, content=body, headers=headers)
        assert response.status_code == 200 and response.json()["status"] == "processed"
    body, headers = shop_webhook(shop, "customers/update", payload, "shpss_neither")
    assert (await client.post(PATH, content=body, headers=headers)).status_code == 401
    # once the rotation is over, the old secret is refused
    monkeypatch.setattr(settings, "shopify_previous_client_secret", None)
    body, headers = shop_webhook(shop, "customers/update", payload, old)
    assert (await client.post(PATH, content=body, headers=headers)).status_code == 401


async def test_unknown_topic_and_unknown_shop_are_ignored(
    client: httpx.AsyncClient, tenant: Any, shop: Shop
) -> None:
    await grant(client, tenant, shop)
    secret = shop.sandbox.state.config.shopify_client_secret
    body, headers = shop_webhook(shop, "products/update", {"id": 1}, secret)
    response = await client.post(PATH, content=body, headers=headers)
    assert response.status_code == 200 and response.json()["status"] == "ignored"
    assert response.json()["topic"] == "products/update"
    body, headers = shop_webhook(shop, "customers/update", {"id": 5, "email": "a@b.co"}, secret)
    headers["X-Shopify-Shop-Domain"] = "nobody-here.myshopify.com"
    response = await client.post(PATH, content=body, headers=headers)
    assert response.status_code == 200 and response.json()["status"] == "ignored"
    headers["X-Shopify-Shop-Domain"] = "evil.com"
    assert (await client.post(PATH, content=body, headers=headers)).status_code == 400


async def compliance(
    client: httpx.AsyncClient, shop: Shop, sink: Any, topic: str, **body: Any
) -> dict[str, Any]:
    """The sandbox sends the topic, signed, with Shopify's payload; replayed into us."""
    count = len(sink.received)
    sent = shop.admin(
        "POST", "/compliance", json={"topic": topic, "url": f"{sink.url}{PATH}", **body}
    ).json()
    delivery = sink.wait_for(count + 1)[-1]
    assert delivery.headers["X-Shopify-Topic"] == topic
    response = await replay(client, delivery)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "processed"
    return sent["payload"]


async def test_compliance_topics(
    client: httpx.AsyncClient, tenant: Any, other_tenant: Any, shop: Shop, shopify_sink: Any,
    owner_conn: Any, pg_dump: Any,
) -> None:  # fmt: skip
    connector_id = await grant(client, tenant, shop)
    first, second = shop.customer_ids(2)
    for customer_id in (first, second):
        shop.admin("PATCH", f"/customers/{customer_id}", json={"first_name": "Linked"})
    for delivery in shopify_sink.wait_for(2):
        await replay(client, delivery)
    held = links_of(owner_conn, connector_id, str(first))
    assert held >= 1 and links_of(owner_conn, connector_id, str(second)) >= 1

    # customers/data_request: recorded, with what we hold (ids and counts, no PII)
    payload = await compliance(client, shop, shopify_sink, "customers/data_request",
                               customer_id=first)  # fmt: skip
    assert set(payload) == {"shop_id", "shop_domain", "orders_requested", "customer",
                            "data_request"}  # fmt: skip
    listed = await client.get(
        f"/v1/connectors/{connector_id}/shopify/compliance-requests", headers=tenant.admin
    )
    [request] = listed.json()
    assert request["topic"] == "customers/data_request"
    assert request["customer_id"] == str(first)
    assert request["shopify_request_id"] == str(payload["data_request"]["id"])
    assert request["order_ids"] == [str(i) for i in payload["orders_requested"]]
    result = request["result"]
    assert result["holds_customer"] is True
    assert result["hashed_emails"] + result["hashed_phones"] == held
    assert payload["customer"]["email"] not in listed.text
    one = await client.get(f"/v1/shopify/compliance-requests/{request['id']}",
                           headers=tenant.admin)  # fmt: skip
    assert one.json() == request
    other = await client.get(f"/v1/shopify/compliance-requests/{request['id']}",
                             headers=other_tenant.admin)  # fmt: skip
    assert other.status_code == 404

    # customers/redact: the customer's links go, the other customer's stay
    payload = await compliance(client, shop, shopify_sink, "customers/redact", customer_id=first)
    assert set(payload) == {"shop_id", "shop_domain", "customer", "orders_to_redact"}
    assert links_of(owner_conn, connector_id, str(first)) == 0
    assert links_of(owner_conn, connector_id, str(second)) >= 1

    # shop/redact: everything of the shop goes
    payload = await compliance(client, shop, shopify_sink, "shop/redact")
    assert set(payload) == {"shop_id", "shop_domain"}
    assert links_of(owner_conn, connector_id) == 0
    assert (
        owner_conn.execute(
            "SELECT count(*) FROM connector_credentials WHERE connector_id = %s", (connector_id,)
        ).fetchone()[0]
        == 0
    )
    connector = (await client.get(f"/v1/connectors/{connector_id}", headers=tenant.admin)).json()
    assert connector["state"] == "revoked" and "shop/redact" in connector["last_error"]
    topics = [
        r["topic"]
        for r in (
            await client.get(
                f"/v1/connectors/{connector_id}/shopify/compliance-requests",
                headers=tenant.admin,
            )
        ).json()
    ]
    assert topics == ["customers/data_request", "customers/redact", "shop/redact"]
    redacted = owner_conn.execute(
        "SELECT result FROM shopify_compliance_requests WHERE topic = 'customers/redact'"
        " AND connector_id = %s",
        (connector_id,),
    ).fetchone()[0]
    assert redacted["identity_links_deleted"] == held and "orders_identifiers_erased" in redacted
    dump = pg_dump()
    assert payload["shop_domain"] in dump  # the shop's name is no secret; people's data is
    for customer_id in (first,):
        email = shop.store.data.customers.get(customer_id).email
        assert email not in dump


async def test_app_uninstalled_revokes_without_calling_shopify(
    client: httpx.AsyncClient, tenant: Any, shop: Shop, shopify_sink: Any, owner_conn: Any
) -> None:
    connector_id = await grant(client, tenant, shop)
    shop.admin("PATCH", f"/customers/{shop.customer_ids(1)[0]}", json={"first_name": "L"})
    [update] = shopify_sink.wait_for(1)
    await replay(client, update)
    assert links_of(owner_conn, connector_id) >= 1

    shop.admin("POST", "/uninstall")
    [*_, uninstalled] = shopify_sink.wait_for(2)
    assert uninstalled.headers["X-Shopify-Topic"] == "app/uninstalled"
    response = await replay(client, uninstalled)
    assert response.json()["status"] == "processed"
    connector = (await client.get(f"/v1/connectors/{connector_id}", headers=tenant.admin)).json()
    assert connector["state"] == "revoked" and "uninstalled" in connector["last_error"]
    assert links_of(owner_conn, connector_id) == 0
    assert (
        owner_conn.execute(
            "SELECT count(*) FROM connector_credentials WHERE connector_id = %s", (connector_id,)
        ).fetchone()[0]
        == 0
    )
    # later customer webhooks for the revoked connector are ignored
    again = await replay(client, update)
    assert again.json()["status"] == "ignored"
