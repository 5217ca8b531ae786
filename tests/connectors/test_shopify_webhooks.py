"""Shopify webhooks: real signed deliveries from the sandbox replayed into the service.

Signature checks (bad, missing, rotation), deduplication, the record topics, app/uninstalled
and the three mandatory compliance topics with Shopify's documented payloads. The
whole-shop topics are done by a real worker of the job queue, run in the test.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from shopify_fixtures import Shop, grant

from athos_identity.jobs import open_jobs
from athos_identity.settings import get_settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sync"))

from sync_support import run_until_ended, start_sync

pytest_plugins = ["shopify_fixtures"]

PATH = "/v1/webhooks/shopify"
SHOP_EVENTS_TASK = "shopify.apply_shop_events"


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


def customer_rows(owner_conn: Any, connector_id: str) -> set[str]:
    rows = owner_conn.execute(
        "SELECT customer_id FROM customers WHERE connector_id = %s", (connector_id,)
    ).fetchall()
    return {r[0] for r in rows}


def order_hashes(owner_conn: Any, connector_id: str, order_id: Any) -> tuple[bool, bool]:
    """(has an e-mail hash, has a phone hash) of a stored order."""
    [row] = owner_conn.execute(
        "SELECT email_key IS NOT NULL, phone_key IS NOT NULL FROM orders"
        " WHERE connector_id = %s AND order_id = %s",
        (connector_id, str(order_id)),
    ).fetchall()
    return (bool(row[0]), bool(row[1]))


def credentials_of(owner_conn: Any, connector_id: str) -> int:
    return int(
        owner_conn.execute(
            "SELECT count(*) FROM connector_credentials WHERE connector_id = %s", (connector_id,)
        ).fetchone()[0]
    )


def queued_jobs(owner_conn: Any) -> list[tuple[str, dict[str, Any]]]:
    """Jobs waiting in the `hooks` queue (a worker also queues its periodic ones)."""
    return [
        (task, args)
        for task, args in owner_conn.execute(
            "SELECT task_name, args FROM procrastinate_jobs"
            " WHERE status = 'todo' AND queue_name = 'hooks' ORDER BY id"
        ).fetchall()
    ]


async def run_hooks_worker() -> None:
    """A real worker of the `hooks` queue, in this process, until nothing is due."""
    jobs = await open_jobs()
    await jobs.run_worker_async(
        queues=["hooks"], wait=False, install_signal_handlers=False, listen_notify=False
    )


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
    created = shop.admin(
        "POST", "/customers", json={"email": "New.Person@Example.com", "phone": "+16502530000"}
    ).json()
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
    assert links_of(owner_conn, connector_id, str(created["id"])) == 2  # its e-mail and phone
    # the customers are recorded as a pull records them (a full sync can sweep them)
    assert customer_rows(owner_conn, connector_id) == {str(first), str(created["id"])}

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
    assert customer_rows(owner_conn, connector_id) == {str(created["id"])}

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
    client: httpx.AsyncClient, shop: Shop, sink: Any, topic: str, status: str = "processed",
    **body: Any,
) -> dict[str, Any]:  # fmt: skip
    """The sandbox sends the topic, signed, with Shopify's payload; replayed into us."""
    count = len(sink.received)
    sent = shop.admin(
        "POST", "/compliance", json={"topic": topic, "url": f"{sink.url}{PATH}", **body}
    ).json()
    delivery = sink.wait_for(count + 1)[-1]
    assert delivery.headers["X-Shopify-Topic"] == topic
    response = await replay(client, delivery)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == status
    return {**sent["payload"], "_delivery": delivery}


@dataclass
class Held:
    """Two linked customers and orders stored from their webhooks."""

    first: int
    second: int
    own_orders: list[int]  # the first customer's
    guest_order: int  # a guest checkout, listed in the first customer's requests
    other_order: int  # the second customer's


async def customers_and_orders(
    client: httpx.AsyncClient, shop: Shop, sink: Any, *, pull_connector: str | None = None,
    admin: dict[str, str] | None = None,
) -> Held:  # fmt: skip
    """Orders of two customers and a guest, made in the shop; stored from their webhooks,
    or, with `pull_connector`, by a full pull (then no webhook record exists of them)."""
    first, second = shop.customer_ids(2)
    email = {c: shop.store.data.customers.get(c).email for c in (first, second)}
    for customer_id in (first, second):
        shop.admin("PATCH", f"/customers/{customer_id}", json={"first_name": "Linked"})

    def order(**fields: Any) -> int:
        return int(shop.admin("POST", "/orders", json={"line_count": 2, **fields}).json()["id"])

    own = [
        order(customer_id=first, email=email[first], phone="+16502530000"),
        order(customer_id=first, email=email[first]),
    ]
    guest = order(email="guest.checkout@example.com", phone="+16502530001")
    other = order(customer_id=second, email=email[second])
    deliveries = sink.wait_for(6)
    if pull_connector is None:
        for delivery in deliveries:
            response = await replay(client, delivery)
            assert response.json()["status"] == "processed", response.text
    else:
        assert admin is not None
        run = await run_until_ended(
            client, admin, await start_sync(client, admin, pull_connector, "full")
        )
        assert run["status"] == "succeeded", run
    return Held(first, second, own, guest, other)


async def test_data_request_reports_the_links_and_orders_held(
    client: httpx.AsyncClient, tenant: Any, other_tenant: Any, shop: Shop, shopify_sink: Any,
    owner_conn: Any,
) -> None:  # fmt: skip
    connector_id = await grant(client, tenant, shop, history_days=3650)
    held = await customers_and_orders(
        client, shop, shopify_sink, pull_connector=connector_id, admin=tenant.admin
    )
    links = links_of(owner_conn, connector_id, str(held.first))
    assert links >= 1
    # what the shop has of the customer: its generated orders too, all pulled
    own_orders = sorted(
        str(o.id) for o in shop.store.data.orders.iter_by_id() if o.customer_id == held.first
    )
    assert set(map(str, held.own_orders)) <= set(own_orders)
    assert not owner_conn.execute(  # pulled: we hold the orders, but no webhook of them
        "SELECT 1 FROM webhook_deliveries WHERE resource_type = 'order'"
    ).fetchall()
    listed = [*held.own_orders, held.guest_order, 424242]  # the last one we never saw

    payload = await compliance(client, shop, shopify_sink, "customers/data_request",
                               customer_id=held.first, order_ids=listed)  # fmt: skip
    assert set(payload) - {"_delivery"} == {"shop_id", "shop_domain", "orders_requested",
                                            "customer", "data_request"}  # fmt: skip
    response = await client.get(
        f"/v1/connectors/{connector_id}/shopify/compliance-requests", headers=tenant.admin
    )
    [request] = response.json()
    assert request["topic"] == "customers/data_request"
    assert request["customer_id"] == str(held.first)
    assert request["shopify_request_id"] == str(payload["data_request"]["id"])
    assert request["order_ids"] == [str(i) for i in listed]
    result = request["result"]
    assert result["customer_ids"] == [str(held.first)] and result["holds_customer"] is True
    assert result["hashed_emails"] + result["hashed_phones"] == result["identity_links"] == links
    assert result["orders_of_customer"] == len(own_orders)
    requested = sorted(str(i) for i in [*held.own_orders, held.guest_order])
    assert sorted(result["orders_requested_held"]) == requested  # not 424242: never seen
    every = sorted({*own_orders, str(held.guest_order)})
    assert sorted(result["orders_held"]) == every  # not the second customer's order
    hashed = sum(order_hashes(owner_conn, connector_id, o) != (False, False) for o in every)
    assert result["orders_with_hashed_identifiers"] == hashed >= len(requested)
    assert payload["customer"]["email"] not in response.text
    one = await client.get(f"/v1/shopify/compliance-requests/{request['id']}",
                           headers=tenant.admin)  # fmt: skip
    assert one.json() == request
    other = await client.get(f"/v1/shopify/compliance-requests/{request['id']}",
                             headers=other_tenant.admin)  # fmt: skip
    assert other.status_code == 404

    # a customer we hold nothing of (created in the shop after the pull): said so
    received = len(shopify_sink.received)
    stranger = shop.admin("POST", "/customers", json={"email": "later@example.com"}).json()["id"]
    shopify_sink.wait_for(received + 1)  # its customers/create, not replayed
    await compliance(client, shop, shopify_sink, "customers/data_request", customer_id=stranger)
    requests = (
        await client.get(
            f"/v1/connectors/{connector_id}/shopify/compliance-requests", headers=tenant.admin
        )
    ).json()
    nothing = requests[-1]["result"]
    assert nothing["customer_ids"] == [] and nothing["holds_customer"] is False
    assert nothing["identity_links"] == nothing["orders_of_customer"] == 0
    assert nothing["orders_held"] == []


async def test_customer_redact_erases_its_links_and_the_listed_orders_hashes(
    client: httpx.AsyncClient, tenant: Any, shop: Shop, shopify_sink: Any, owner_conn: Any,
    pg_dump: Any,
) -> None:  # fmt: skip
    connector_id = await grant(client, tenant, shop)
    held = await customers_and_orders(client, shop, shopify_sink)
    listed = [*held.own_orders, held.guest_order]
    first_links = links_of(owner_conn, connector_id, str(held.first))
    second_links = links_of(owner_conn, connector_id, str(held.second))
    assert first_links >= 1 and second_links >= 1
    assert [order_hashes(owner_conn, connector_id, o) for o in listed] == [
        (True, True), (True, False), (True, True),
    ]  # fmt: skip
    assert order_hashes(owner_conn, connector_id, held.other_order) == (True, False)

    payload = await compliance(client, shop, shopify_sink, "customers/redact",
                               customer_id=held.first, order_ids=listed)  # fmt: skip
    assert set(payload) - {"_delivery"} == {"shop_id", "shop_domain", "customer",
                                            "orders_to_redact"}  # fmt: skip
    # the customer's links and row are gone; its orders stay, without their hashes
    assert links_of(owner_conn, connector_id, str(held.first)) == 0
    assert customer_rows(owner_conn, connector_id) == {str(held.second)}
    for order_id in listed:
        assert order_hashes(owner_conn, connector_id, order_id) == (False, False)
    # the other customer keeps everything
    assert links_of(owner_conn, connector_id, str(held.second)) == second_links
    assert order_hashes(owner_conn, connector_id, held.other_order) == (True, False)
    [result] = owner_conn.execute(
        "SELECT result FROM shopify_compliance_requests WHERE topic = 'customers/redact'"
        " AND connector_id = %s",
        (connector_id,),
    ).fetchone()
    assert result["identity_links_deleted"] == first_links
    assert result["orders_identifiers_erased"] == len(listed)
    assert payload["customer"]["email"] not in pg_dump()

    # Shopify retrying the same delivery changes nothing
    again = await replay(client, payload["_delivery"])
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert (
        owner_conn.execute(
            "SELECT count(*) FROM shopify_compliance_requests WHERE connector_id = %s",
            (connector_id,),
        ).fetchone()[0]
        == 1
    )


async def test_shop_redact_is_answered_at_once_and_done_by_a_job(
    client: httpx.AsyncClient, tenant: Any, other_tenant: Any, shop: Shop, shopify_sink: Any,
    owner_conn: Any, pg_dump: Any,
) -> None:  # fmt: skip
    connector_id = await grant(client, tenant, shop)
    other_connector = await grant(client, other_tenant, shop)  # two tenants, one shop
    held = await customers_and_orders(client, shop, shopify_sink)
    assert links_of(owner_conn, connector_id) >= 1
    assert links_of(owner_conn, other_connector) >= 1

    payload = await compliance(client, shop, shopify_sink, "shop/redact", status="queued")
    assert set(payload) - {"_delivery"} == {"shop_id", "shop_domain"}
    # answered before the work: nothing purged yet; the job carries ids only
    assert links_of(owner_conn, connector_id) >= 1
    assert {(task, tuple(sorted(args.items()))) for task, args in queued_jobs(owner_conn)} == {
        (SHOP_EVENTS_TASK, (("connector_id", cid), ("tenant_id", str(t.tenant_id))))
        for cid, t in ((connector_id, tenant), (other_connector, other_tenant))
    }

    await run_hooks_worker()
    for cid, keys in ((connector_id, tenant), (other_connector, other_tenant)):
        assert links_of(owner_conn, cid) == 0 and customer_rows(owner_conn, cid) == set()
        assert credentials_of(owner_conn, cid) == 0
        connector = (await client.get(f"/v1/connectors/{cid}", headers=keys.admin)).json()
        assert connector["state"] == "revoked" and "shop/redact" in connector["last_error"]
        [request] = (
            await client.get(
                f"/v1/connectors/{cid}/shopify/compliance-requests", headers=keys.admin
            )
        ).json()
        assert request["topic"] == "shop/redact" and request["completed_at"]
    assert not owner_conn.execute("SELECT 1 FROM orders").fetchall()
    assert queued_jobs(owner_conn) == []

    # Shopify retrying the delivery after the purge: still recognised, nothing queued
    again = await replay(client, payload["_delivery"])
    assert again.json()["status"] == "duplicate" and queued_jobs(owner_conn) == []
    dump = pg_dump()
    assert payload["shop_domain"] in dump  # the shop's name is no secret; people's data is
    assert shop.store.data.customers.get(held.first).email not in dump


async def test_app_uninstalled_revokes_in_a_job_retried_on_failure(
    client: httpx.AsyncClient, tenant: Any, shop: Shop, shopify_sink: Any, owner_conn: Any
) -> None:
    connector_id = await grant(client, tenant, shop)
    shop.admin("PATCH", f"/customers/{shop.customer_ids(1)[0]}", json={"first_name": "L"})
    [update] = shopify_sink.wait_for(1)
    await replay(client, update)
    links = links_of(owner_conn, connector_id)
    assert links >= 1

    shop.admin("POST", "/uninstall")
    [*_, uninstalled] = shopify_sink.wait_for(2)
    assert uninstalled.headers["X-Shopify-Topic"] == "app/uninstalled"
    response = await replay(client, uninstalled)
    assert response.status_code == 200 and response.json()["status"] == "queued"
    # answered before the work; the job's arguments are ids only
    connector = (await client.get(f"/v1/connectors/{connector_id}", headers=tenant.admin)).json()
    assert connector["state"] == "granted" and links_of(owner_conn, connector_id) == links
    expected_job = (SHOP_EVENTS_TASK, {"tenant_id": str(tenant.tenant_id),
                                       "connector_id": connector_id})  # fmt: skip
    assert queued_jobs(owner_conn) == [expected_job]
    # a duplicate queues nothing more ...
    assert (await replay(client, uninstalled)).json()["status"] == "duplicate"
    assert queued_jobs(owner_conn) == [expected_job]
    # ... unless the job was lost (queued after the commit, the process died): queued again
    owner_conn.execute("DELETE FROM procrastinate_jobs WHERE queue_name = 'hooks'")
    assert (await replay(client, uninstalled)).json()["status"] == "duplicate"
    assert queued_jobs(owner_conn) == [expected_job]

    # the job fails (the database refuses a delete): nothing changes, it is retried later
    app_role = get_settings().app_role
    owner_conn.execute(f"REVOKE DELETE ON identity_links FROM {app_role}")
    try:
        await run_hooks_worker()
    finally:
        owner_conn.execute(f"GRANT DELETE ON identity_links TO {app_role}")
    [(attempts,)] = owner_conn.execute(
        "SELECT attempts FROM procrastinate_jobs WHERE status = 'todo' AND queue_name = 'hooks'"
    ).fetchall()
    assert attempts == 1
    assert links_of(owner_conn, connector_id) == links and credentials_of(owner_conn, connector_id)
    owner_conn.execute(
        "UPDATE procrastinate_jobs SET scheduled_at = now()"
        " WHERE status = 'todo' AND queue_name = 'hooks'"
    )
    await run_hooks_worker()

    connector = (await client.get(f"/v1/connectors/{connector_id}", headers=tenant.admin)).json()
    assert connector["state"] == "revoked" and "uninstalled" in connector["last_error"]
    assert links_of(owner_conn, connector_id) == 0
    assert credentials_of(owner_conn, connector_id) == 0
    assert queued_jobs(owner_conn) == []
    # Shopify's retry after the purge is still a duplicate; later customer webhooks of the
    # revoked connector are ignored
    assert (await replay(client, uninstalled)).json()["status"] == "duplicate"
    assert queued_jobs(owner_conn) == []
    again = await replay(client, update)
    assert again.json()["status"] == "ignored"


async def test_a_customer_known_from_webhooks_only_is_swept_by_a_full_sync(
    client: httpx.AsyncClient, tenant: Any, shop: Shop, owner_conn: Any
) -> None:
    """A customer gone from Shopify without a customers/delete webhook (missed, or never
    sent) loses its links at the next full sync, as a pulled customer does."""
    connector_id = await grant(client, tenant, shop)
    secret = shop.sandbox.state.config.shopify_client_secret
    gone = 990_000_001  # not in the shop
    assert shop.store.data.customers.get(gone) is None
    body, headers = shop_webhook(
        shop, "customers/create", {"id": gone, "email": "Gone.Person@Example.com"}, secret
    )
    assert (await client.post(PATH, content=body, headers=headers)).json()["status"] == "processed"
    assert links_of(owner_conn, connector_id, str(gone)) == 1
    assert str(gone) in customer_rows(owner_conn, connector_id)

    run = await run_until_ended(
        client, tenant.admin, await start_sync(client, tenant.admin, connector_id, "full")
    )
    assert run["status"] == "succeeded", run
    assert links_of(owner_conn, connector_id, str(gone)) == 0
    assert str(gone) not in customer_rows(owner_conn, connector_id)
    kept = shop.customer_ids(1)[0]  # the shop's own customers were pulled and stay
    assert links_of(owner_conn, connector_id, str(kept)) >= 1


async def test_a_late_older_order_webhook_leaves_the_newer_version(
    client: httpx.AsyncClient, tenant: Any, shop: Shop, shopify_sink: Any, owner_conn: Any
) -> None:
    """Shopify does not deliver in order: a retried orders/updated of an older version
    must not overwrite the order (its status, its lines) with stale data."""
    connector_id = await grant(client, tenant, shop)
    order_id = next(shop.store.data.orders.iter_by_id()).id
    shop.admin("PATCH", f"/orders/{order_id}", json={"financial_status": "REFUNDED"})
    [older] = shopify_sink.wait_for(1)
    await asyncio.sleep(1.1)  # updated_at has a resolution of one second
    shop.admin("PATCH", f"/orders/{order_id}", json={"financial_status": "PARTIALLY_REFUNDED"})
    [_, newer] = shopify_sink.wait_for(2)
    assert json.loads(newer.body)["updated_at"] > json.loads(older.body)["updated_at"]

    def stored() -> list[tuple[Any, ...]]:
        return owner_conn.execute(
            "SELECT status, (SELECT count(*) FROM order_lines l WHERE l.order_id = o.order_id"
            "   AND l.connector_id = o.connector_id)"
            " FROM orders o WHERE connector_id = %s AND order_id = %s",
            (connector_id, str(order_id)),
        ).fetchall()

    assert (await replay(client, newer)).json()["status"] == "processed"
    lines = len(json.loads(newer.body)["line_items"])
    assert stored() == [("PARTIALLY_REFUNDED", lines)]
    assert (await replay(client, older)).json()["status"] == "processed"  # another delivery
    assert stored() == [("PARTIALLY_REFUNDED", lines)]
