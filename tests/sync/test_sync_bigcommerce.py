"""Pulls of a BigCommerce store through the real job queue and worker, against the sandbox."""

from __future__ import annotations

import sys
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "connectors"))

from sync_support import (
    expected_answers,
    granted_bigcommerce_connector,
    run_jobs_until_idle,
    run_until_ended,
    snapshot,
    start_sync,
)

from athos_identity.connectors.bigcommerce import source as bc_source
from athos_identity.connectors.bigcommerce.client import BigCommerceClient
from athos_identity.sandbox.bigcommerce.serialize import ORDER_STATUSES
from athos_identity.sandbox.faults import Fault
from athos_identity.settings import get_settings

pytest_plugins = ["bigcommerce_fixtures"]  # bc_store: a fresh sandbox store with a full token
LIST_PATHS = {"/v3/customers": "customers", "/v2/orders": "orders"}


async def lookup_emails(
    client: httpx.AsyncClient, admin: dict, emails: list[str]
) -> list[set[str]]:
    response = await client.post(
        "/v1/identity/lookup",
        json={"identifiers": [{"type": "email_sha256", "value": _sha(e)} for e in emails]},
        headers=admin,
    )
    assert response.status_code == 200, response.text
    return [{c["customer_id"] for c in r["customers"]} for r in response.json()["results"]]


async def lookup(client: httpx.AsyncClient, admin: dict, kind: str, values: list[str]) -> list:
    response = await client.post(
        "/v1/identity/lookup",
        json={"identifiers": [{"type": f"{kind}_sha256", "value": _sha(v)} for v in values]},
        headers=admin,
    )
    assert response.status_code == 200, response.text
    return [{c["customer_id"] for c in r["customers"]} for r in response.json()["results"]]


def _sha(normalized: str) -> str:
    import hashlib

    return hashlib.sha256(normalized.encode()).hexdigest()


async def assert_exactly_the_store(
    client: httpx.AsyncClient,
    admin: dict,
    conn: psycopg.Connection,
    connector_id: str,
    store: Any,
) -> None:
    """The connector holds the store as the sandbox has it now: every customer, the known
    links, every order with its fields and exactly its lines (sets: nothing more, nothing
    less). Phones: every known answer is found; the service may link more (00-prefixed US
    numbers, see tests/sync/test_sync_shopify.py)."""
    data = store.sandbox.state.stores[store.store_hash].data
    customers = list(data.customers.iter_by_id())
    orders = list(data.orders.iter_by_id())
    stored = snapshot(conn, connector_id)
    assert {row[0] for row in stored["customers"]} == {str(c.id) for c in customers}
    answers = expected_answers(store)
    emails = sorted(answers["customers_by_email"])
    found = await lookup(client, admin, "email", emails)
    assert found == [{str(i) for i in answers["customers_by_email"][e]} for e in emails]
    phones = sorted(answers["customers_by_phone"])
    found = await lookup(client, admin, "phone", phones)
    wanted = [{str(i) for i in answers["customers_by_phone"][p]} for p in phones]
    assert all(w <= f for w, f in zip(wanted, found, strict=True))
    assert {(r[0], r[1], r[4], r[5], r[6]) for r in stored["orders"]} == {
        (
            str(o.id),
            str(o.customer_id) if o.customer_id else None,
            o.currency,
            Decimal(o.total_cents) / 100,
            ORDER_STATUSES[o.financial_status][1],
        )
        for o in orders
    }
    assert {r[:6] for r in stored["lines"]} == {
        (str(o.id), str(x.id), str(x.product_id), str(x.variant_id), x.sku, x.quantity)
        for o in orders
        for x in o.lines
    }


async def full_sync(client: httpx.AsyncClient, admin: dict, connector_id: str) -> dict[str, Any]:
    run_id = await start_sync(client, admin, connector_id, "full")
    run = await run_until_ended(client, admin, run_id)
    assert run["status"] == "succeeded", run
    return run


async def test_full_sync_links_every_customer_and_stores_sales_data(
    client: httpx.AsyncClient, tenant: Any, bc_store: Any, owner_conn
) -> None:
    connector_id = await granted_bigcommerce_connector(client, tenant.admin, bc_store)
    expected = expected_answers(bc_store)

    run = await full_sync(client, tenant.admin, connector_id)

    assert run["customers"] == expected["customer_count"]
    assert run["orders"] == expected["order_count"]
    assert run["pages"] >= 2 and run["finished_at"] and run["attempts"] == 1
    emails = sorted(expected["customers_by_email"])
    found = await lookup_emails(client, tenant.admin, emails)
    assert found == [{str(i) for i in expected["customers_by_email"][e]} for e in emails]

    # sales data: a customer's orders with their lines, and no personal data
    buyer = next(
        row[0]
        for row in owner_conn.execute(
            "SELECT customer_id FROM orders WHERE customer_id IS NOT NULL"
        )
    )
    orders = await client.get(f"/v1/customers/{buyer}/orders", headers=tenant.admin)
    assert orders.status_code == 200
    body = orders.json()
    assert body["orders"] and all(o["lines"] for o in body["orders"])
    assert "@" not in orders.text
    guests = owner_conn.execute("SELECT count(*) FROM orders WHERE customer_id IS NULL").fetchone()[
        0
    ]
    assert guests == expected["guest_order_count"]


async def test_one_sync_at_a_time_per_connector(
    client: httpx.AsyncClient, tenant: Any, bc_store: Any
) -> None:
    connector_id = await granted_bigcommerce_connector(client, tenant.admin, bc_store)
    first = await start_sync(client, tenant.admin, connector_id, "full")
    second = await client.post(
        f"/v1/connectors/{connector_id}/syncs", json={"mode": "incremental"}, headers=tenant.admin
    )
    assert second.status_code == 409
    assert first in second.json()["detail"]
    await run_jobs_until_idle()
    history = (
        await client.get(f"/v1/connectors/{connector_id}/syncs", headers=tenant.admin)
    ).json()
    assert [r["id"] for r in history] == [first]


async def test_incremental_sync_picks_up_changes_and_full_sync_sweeps_deletions(
    client: httpx.AsyncClient, tenant: Any, bc_store: Any
) -> None:
    connector_id = await granted_bigcommerce_connector(client, tenant.admin, bc_store)
    await full_sync(client, tenant.admin, connector_id)
    expected = expected_answers(bc_store)
    some_email = sorted(expected["customers_by_email"])[0]
    customer_id = sorted(expected["customers_by_email"][some_email])[0]

    with bc_store.sandbox.client() as sandbox:
        sandbox.patch(
            f"/sandbox/bigcommerce/stores/{bc_store.store_hash}/customers/{customer_id}",
            json={"email": "Moved.Customer@Example.org"},
        ).raise_for_status()
    run_id = await start_sync(client, tenant.admin, connector_id, "incremental")
    await run_jobs_until_idle()
    run = (await client.get(f"/v1/syncs/{run_id}", headers=tenant.admin)).json()
    assert run["status"] == "succeeded" and run["mode"] == "incremental"
    assert run["customers"] < expected["customer_count"], "only changes (and the overlap) are read"
    found = await lookup_emails(client, tenant.admin, ["moved.customer@example.org", some_email])
    assert str(customer_id) in found[0]
    assert str(customer_id) not in found[1]

    with bc_store.sandbox.client() as sandbox:
        sandbox.delete(
            f"/sandbox/bigcommerce/stores/{bc_store.store_hash}/customers/{customer_id}"
        ).raise_for_status()
    swept = await full_sync(client, tenant.admin, connector_id)
    assert swept["deleted"] >= 1
    assert await lookup_emails(client, tenant.admin, ["moved.customer@example.org"]) == [set()]


def change_the_first_record_of_every_page(
    monkeypatch: pytest.MonkeyPatch, store: Any
) -> dict[str, set[int]]:
    """While a pull runs, the merchant edits the first record of each page just read: it
    moves to the end of the `date_modified` order. Returns the ids changed."""
    changed: dict[str, set[int]] = {"customers": set(), "orders": set()}
    request = BigCommerceClient.request
    edits = {"customers": {"first_name": "Edited"}, "orders": {"financial_status": "REFUNDED"}}

    async def request_then_edit(self: Any, method: str, path: str, **kw: Any) -> Any:
        response, body = await request(self, method, path, **kw)
        kind = LIST_PATHS.get(path)
        items = (body or {}).get("data") if kind == "customers" else body
        if kind and items and items[0]["id"] not in changed[kind]:
            changed[kind].add(items[0]["id"])
            with store.sandbox.client() as sandbox:
                sandbox.patch(
                    f"/sandbox/bigcommerce/stores/{store.store_hash}/{kind}/{items[0]['id']}",
                    json=edits[kind],
                ).raise_for_status()
        return response, body

    monkeypatch.setattr(BigCommerceClient, "request", request_then_edit)
    return changed


async def test_records_changed_during_a_full_sync_push_no_other_record_out(
    client: httpx.AsyncClient,
    tenant: Any,
    bc_store: Any,
    owner_conn: psycopg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With page numbers, each edit moved every later record back one place, so one unread
    record slipped onto a page already read: unseen, a full sync swept it."""
    monkeypatch.setattr(bc_source, "PAGE_SIZE", 5)
    connector_id = await granted_bigcommerce_connector(client, tenant.admin, bc_store)
    await full_sync(client, tenant.admin, connector_id)  # everything is there before

    changed = change_the_first_record_of_every_page(monkeypatch, bc_store)
    run = await full_sync(client, tenant.admin, connector_id)

    assert len(changed["customers"]) >= 3 and len(changed["orders"]) >= 3
    assert run["deleted"] == 0, "no record that still exists was swept"
    await assert_exactly_the_store(client, tenant.admin, owner_conn, connector_id, bc_store)


def arm_a_fault_before_each_list_request(
    monkeypatch: pytest.MonkeyPatch, store: Any, schedule: list[dict[str, Any]]
) -> list[Fault]:
    """Switch the schedule's faults on one by one, each just before a list request, so
    every kind strikes a known request of the pull (count faults fire on the next requests
    of the store: the one about to go, then its retries). Returns the faults armed."""
    armed: list[Fault] = []
    pending = iter(schedule)
    request = BigCommerceClient.request

    async def request_after_arming(self: Any, method: str, path: str, **kw: Any) -> Any:
        spec = next(pending, None) if path in LIST_PATHS else None
        if spec is not None:
            fault = store.sandbox.state.faults.add(
                {"platform": "bigcommerce", "path_contains": store.store_hash, **spec}
            )
            armed.append(fault)
        return await request(self, method, path, **kw)

    monkeypatch.setattr(BigCommerceClient, "request", request_after_arming)
    return armed


async def test_faults_are_retried_and_a_fresh_pull_gets_exactly_the_store(
    client: httpx.AsyncClient,
    tenant: Any,
    bc_store: Any,
    owner_conn: psycopg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bc_source, "PAGE_SIZE", 5)  # 5 list requests per stream
    monkeypatch.setattr(get_settings(), "bigcommerce_timeout_seconds", 0.5)
    slow = {"kind": "slow", "count": 1, "delay_seconds": 1.5}  # slower than the timeout
    schedule = [
        {"kind": "429", "count": 3, "retry_after_seconds": 0.2},  # a burst: three in a row
        slow,
        {"kind": "5xx", "count": 2, "status": 502},
        {"kind": "truncate", "count": 1},
        {"kind": "drop", "count": 1},
        # orders: a 5xx outlasting the client's 3 retries fails the job's first attempt;
        # the job is retried and resumes after the page it committed
        slow,
        {"kind": "5xx", "count": 4, "status": 503},
        {"kind": "429", "count": 2, "retry_after_seconds": 0.2},
        {"kind": "truncate", "count": 1},
        {"kind": "drop", "count": 1},
    ]
    connector_id = await granted_bigcommerce_connector(client, tenant.admin, bc_store)
    armed = arm_a_fault_before_each_list_request(monkeypatch, bc_store, schedule)

    run = await full_sync(client, tenant.admin, connector_id)

    assert [(f.kind, f.fired) for f in armed] == [(s["kind"], s["count"]) for s in schedule]
    with bc_store.sandbox.client() as sandbox:
        left = sandbox.get("/sandbox/faults").json()["faults"]
    assert [f for f in left if f["path_contains"] == bc_store.store_hash] == []
    assert run["attempts"] == 2 and run["deleted"] == 0
    answers = expected_answers(bc_store)
    assert (run["customers"], run["orders"]) == (answers["customer_count"], answers["order_count"])
    await assert_exactly_the_store(client, tenant.admin, owner_conn, connector_id, bc_store)


async def test_cancel_stops_a_queued_run(
    client: httpx.AsyncClient, tenant: Any, bc_store: Any
) -> None:
    connector_id = await granted_bigcommerce_connector(client, tenant.admin, bc_store)
    run_id = await start_sync(client, tenant.admin, connector_id, "full")
    cancelled = await client.post(f"/v1/syncs/{run_id}/cancel", headers=tenant.admin)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    await run_jobs_until_idle()
    run = (await client.get(f"/v1/syncs/{run_id}", headers=tenant.admin)).json()
    assert run["status"] == "cancelled" and run["customers"] == 0
    again = await client.post(
        f"/v1/connectors/{connector_id}/syncs", json={"mode": "full"}, headers=tenant.admin
    )
    assert again.status_code == 202, "a cancelled run frees the connector"


async def test_a_revoked_token_fails_the_run_and_asks_for_reauthorization(
    client: httpx.AsyncClient, tenant: Any, bc_store: Any
) -> None:
    connector_id = await granted_bigcommerce_connector(client, tenant.admin, bc_store)
    run_id = await start_sync(client, tenant.admin, connector_id, "full")
    bc_store.delete_account(bc_store.token)
    await run_jobs_until_idle()
    run = (await client.get(f"/v1/syncs/{run_id}", headers=tenant.admin)).json()
    assert run["status"] == "failed" and run["attempts"] == 1
    connector = (await client.get(f"/v1/connectors/{connector_id}", headers=tenant.admin)).json()
    assert connector["state"] == "needs_reauthorization"


async def test_another_tenant_sees_no_runs(
    client: httpx.AsyncClient, tenant: Any, other_tenant: Any, bc_store: Any
) -> None:
    connector_id = await granted_bigcommerce_connector(client, tenant.admin, bc_store)
    run_id = await start_sync(client, tenant.admin, connector_id, "full")
    assert (await client.get(f"/v1/syncs/{run_id}", headers=other_tenant.admin)).status_code == 404
    listed = await client.get(f"/v1/connectors/{connector_id}/syncs", headers=other_tenant.admin)
    assert listed.status_code == 404
    cancel = await client.post(f"/v1/syncs/{run_id}/cancel", headers=other_tenant.admin)
    assert cancel.status_code == 404
    start = await client.post(
        f"/v1/connectors/{connector_id}/syncs", json={"mode": "full"}, headers=other_tenant.admin
    )
    assert start.status_code == 404


async def test_hooks_bring_changes_and_deletions_without_a_sync(
    client: httpx.AsyncClient, tenant: Any, bc_store: Any, bc_webhook_sink: Any, monkeypatch
) -> None:
    from athos_identity.settings import get_settings

    monkeypatch.setattr(get_settings(), "public_url", bc_webhook_sink.url)
    connector_id = await granted_bigcommerce_connector(client, tenant.admin, bc_store)
    await full_sync(client, tenant.admin, connector_id)
    expected = expected_answers(bc_store)
    emails = sorted(expected["customers_by_email"])
    changed = sorted(expected["customers_by_email"][emails[0]])[0]
    removed = sorted(expected["customers_by_email"][emails[1]])[0]
    store_path = f"/sandbox/bigcommerce/stores/{bc_store.store_hash}"
    with bc_store.sandbox.client() as sandbox:
        sandbox.patch(
            f"{store_path}/customers/{changed}", json={"email": "Hooked.Change@Example.org"}
        ).raise_for_status()
        sandbox.delete(f"{store_path}/customers/{removed}").raise_for_status()

    for delivery in bc_webhook_sink.wait_for(2):  # what BigCommerce POSTs, replayed as is
        headers = {"Content-Type": "application/json", **{
            k: v for k, v in delivery.headers.items() if k.lower().startswith("x-athos")
        }}  # fmt: skip
        received = await client.post(delivery.path, content=delivery.body, headers=headers)
        assert received.json() == {"status": "recorded"}
    await run_jobs_until_idle(queues=("hooks",))

    found = await lookup_emails(client, tenant.admin, ["hooked.change@example.org", emails[1]])
    assert str(changed) in found[0]
    assert str(removed) not in found[1]


async def test_a_full_sync_sweeps_only_orders_its_source_could_see(
    client: httpx.AsyncClient, tenant: Any, bc_store: Any, owner_conn, monkeypatch
) -> None:
    """A source blind to old orders (Shopify without read_all_orders) must not delete them."""
    from datetime import UTC, datetime, timedelta

    from athos_identity import db
    from athos_identity.connectors.bigcommerce.source import BigCommerceSource
    from athos_identity.sales import repository as sales
    from athos_identity.sales.records import HashedOrder

    connector_id = await granted_bigcommerce_connector(client, tenant.admin, bc_store)
    long_ago = datetime.now(UTC) - timedelta(days=400)
    recently = datetime.now(UTC) - timedelta(days=1)

    def order(order_id: str, placed: datetime) -> HashedOrder:
        return HashedOrder(order_id, None, None, None, 1, "USD", None, None, placed, placed, (), 0)

    async with db.tenant_transaction(tenant.tenant_id) as session:
        await sales.upsert_orders(
            session,
            tenant.tenant_id,
            uuid.UUID(connector_id),
            [order("old-unseen", long_ago), order("recent-unseen", recently)],
        )
    monkeypatch.setattr(
        BigCommerceSource, "orders_visible_since", datetime.now(UTC) - timedelta(days=60),
        raising=False,
    )  # fmt: skip
    await full_sync(client, tenant.admin, connector_id)
    kept = {
        row[0]
        for row in owner_conn.execute(
            "SELECT order_id FROM orders WHERE order_id IN ('old-unseen', 'recent-unseen')"
        )
    }
    assert kept == {"old-unseen"}


async def test_deleting_the_credentials_ends_a_queued_pull_without_retries(
    client: httpx.AsyncClient, tenant: Any, bc_store: Any, owner_conn
) -> None:
    connector_id = await granted_bigcommerce_connector(client, tenant.admin, bc_store)
    await start_sync(client, tenant.admin, connector_id, "full")
    deleted = await client.delete(
        f"/v1/connectors/{connector_id}/bigcommerce/credentials", headers=tenant.admin
    )
    assert deleted.status_code == 200, deleted.text
    await run_jobs_until_idle()
    jobs = owner_conn.execute(
        "SELECT status, attempts FROM procrastinate_jobs WHERE task_name = 'sync.pull'"
    ).fetchall()
    assert jobs == [("succeeded", 1)], "one attempt: the job ended at once, not retried"
    assert owner_conn.execute("SELECT count(*) FROM identity_links").fetchone() == (0,)
