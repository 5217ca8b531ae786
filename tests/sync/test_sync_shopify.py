"""Pulls of a Shopify shop through the real job queue and worker, against the sandbox:
bulk exports for full syncs, paged connections for incremental ones."""

from __future__ import annotations

import hashlib
import json
import sys
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "connectors"))

from shopify_fixtures import Shop, grant
from sync_support import run_until_ended, snapshot, start_sync

from athos_identity.connectors.shopify import bulk as shopify_bulk
from athos_identity.connectors.shopify import source as shopify_source
from athos_identity.connectors.shopify import windows
from athos_identity.connectors.shopify.client import ShopifyClient
from athos_identity.sandbox.faults import Fault
from athos_identity.settings import get_settings
from athos_identity.sync import engine

pytest_plugins = ["shopify_fixtures"]  # shopify_settings: the sandbox the service talks to

ALL_HISTORY = {"history_days": 3650}  # the grant asks for read_all_orders
DAY = 86_400


@pytest.fixture
def small_shop(shopify_settings: Any) -> Shop:
    """A fresh shop: 30 customers, 24 orders (1-60 lines each), Standard plan limits."""
    domain = f"s{uuid.uuid4().hex[:10]}.myshopify.com"
    with shopify_settings.client() as sandbox:
        sandbox.post(
            "/sandbox/shopify/shops",
            json={"shop": domain, "customers": 30, "orders": 24, "plan": "basic", "seed": 5},
        ).raise_for_status()
    return Shop(shopify_settings, domain)


def _sha(normalized: str) -> str:
    return hashlib.sha256(normalized.encode()).hexdigest()


async def lookup(client: httpx.AsyncClient, admin: dict, kind: str, values: list[str]) -> list:
    response = await client.post(
        "/v1/identity/lookup",
        json={"identifiers": [{"type": f"{kind}_sha256", "value": _sha(v)} for v in values]},
        headers=admin,
    )
    assert response.status_code == 200, response.text
    return [{c["customer_id"] for c in r["customers"]} for r in response.json()["results"]]


def expected(shop: Shop) -> dict[str, Any]:
    return dict(shop.admin("GET", "/expected").json())


def operations(shop: Shop) -> list[Any]:
    return [shop.store.bulk_operations[n] for n in sorted(shop.store.bulk_operations)]


def visible_orders(shop: Shop, *, all_history: bool) -> list[Any]:
    orders = list(shop.store.data.orders.iter_by_id())
    if all_history:
        return orders
    cutoff = shop.sandbox.state.clock.now() - 60 * DAY
    return [o for o in orders if o.created_at >= cutoff]


async def full_sync(client: httpx.AsyncClient, admin: dict, connector_id: str) -> dict[str, Any]:
    run = await run_until_ended(
        client, admin, await start_sync(client, admin, connector_id, "full")
    )
    assert run["status"] == "succeeded", run
    return run


async def assert_links_match(client: httpx.AsyncClient, admin: dict, answers: dict) -> None:
    """E-mails exactly as the known answers say. Phones: every known answer is found; the
    service may link more, because it reads `00`-prefixed numbers of a US store
    (`001 512 968 0864`) as international where the sandbox's plain libphonenumber parse
    rejects them (a disagreement between identity.normalize and sandbox.expected)."""
    wanted = answers["customers_by_email"]
    emails = sorted(wanted)
    found = await lookup(client, admin, "email", emails)
    assert found == [{str(i) for i in wanted[e]} for e in emails]
    wanted = answers["customers_by_phone"]
    phones = sorted(wanted)
    found = await lookup(client, admin, "phone", phones)
    assert all({str(i) for i in wanted[p]} <= ids for p, ids in zip(phones, found, strict=True))


def stored_lines(conn: psycopg.Connection, connector_id: str) -> dict[str, set[tuple]]:
    rows = conn.execute(
        "SELECT order_id, line_id, quantity, sku, product_id, variant_id FROM order_lines"
        " WHERE connector_id = %s",
        (uuid.UUID(connector_id),),
    ).fetchall()
    found: dict[str, set[tuple]] = {}
    for order_id, *line in rows:
        found.setdefault(order_id, set()).add(tuple(line))
    return found


def sandbox_lines(orders: list[Any]) -> dict[str, set[tuple]]:
    return {
        str(o.id): {
            (str(x.id), x.quantity, x.sku, str(x.product_id), str(x.variant_id)) for x in o.lines
        }
        for o in orders
    }


def children_before_parents(shop: Shop, operation: Any) -> int:
    """How many line items of the export came before their order (read like a client)."""
    url = shop.sandbox.url + operation.download_path(shop.store)
    seen: set[str] = set()
    early = 0
    with httpx.Client(timeout=10) as http:
        for line in http.get(url).text.splitlines():
            row = json.loads(line)
            if "__parentId" in row:
                early += row["__parentId"] not in seen
            else:
                seen.add(row["id"])
    return early


# --- full sync ------------------------------------------------------------------------------


async def test_full_sync_links_every_customer_and_stores_orders_with_their_lines(
    client: httpx.AsyncClient, tenant: Any, small_shop: Shop, owner_conn: psycopg.Connection
) -> None:
    connector_id = await grant(client, tenant, small_shop, **ALL_HISTORY)

    run = await full_sync(client, tenant.admin, connector_id)

    assert run["attempts"] == 1
    # one export per stream, both completed; the orders' file had children before parents
    done = operations(small_shop)
    assert [(o.root_field, o.status) for o in done] == [
        ("customers", "COMPLETED"),
        ("orders", "COMPLETED"),
    ]
    assert children_before_parents(small_shop, done[1]) > 0
    await assert_exactly_the_shop(client, tenant.admin, owner_conn, connector_id, small_shop, run)


async def assert_exactly_the_shop(
    client: httpx.AsyncClient,
    admin: dict,
    conn: psycopg.Connection,
    connector_id: str,
    shop: Shop,
    run: dict[str, Any],
) -> None:
    """A full sync of the whole history left exactly the shop: every customer and the known
    links, every order with its fields and exactly its lines, each record counted once."""
    answers = expected(shop)
    assert (run["customers"], run["orders"]) == (answers["customer_count"], answers["order_count"])
    await assert_links_match(client, admin, answers)
    customers = shop.store.data.customers.iter_by_id()
    stored = snapshot(conn, connector_id)
    assert {row[0] for row in stored["customers"]} == {str(c.id) for c in customers}
    # every order with exactly its lines, GIDs turned into the plain ids webhooks use
    orders = visible_orders(shop, all_history=True)
    assert stored_lines(conn, connector_id) == sandbox_lines(orders)
    rows = conn.execute(
        "SELECT order_id, customer_id, total, currency, status FROM orders WHERE connector_id = %s",
        (uuid.UUID(connector_id),),
    ).fetchall()
    by_id = {o.id: o for o in orders}
    assert len(rows) == len(orders)
    for order_id, customer_id, total, currency, status in rows:
        order = by_id[int(order_id)]
        assert customer_id == (str(order.customer_id) if order.customer_id else None)
        assert (total, currency, status) == (
            Decimal(order.total_cents) / 100,
            order.currency,
            order.financial_status,
        )
    assert sum(1 for r in rows if r[1] is None) == answers["guest_order_count"]


async def test_failed_and_stuck_exports_are_run_again_over_halved_windows(
    client: httpx.AsyncClient,
    tenant: Any,
    small_shop: Shop,
    owner_conn: psycopg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shopify_bulk, "STALL_SECONDS", 1.0)
    # no customers through the connection while an export runs: every export is read whole
    monkeypatch.setattr(shopify_source, "EARLY_PAGES", 0)
    connector_id = await grant(client, tenant, small_shop, **ALL_HISTORY)
    answers = expected(small_shop)
    with small_shop.sandbox.client() as sandbox:
        for kind in ("bulk_fail", "bulk_stuck"):  # the customers' export fails, then sticks
            sandbox.post(
                "/sandbox/faults", json={"platform": "shopify", "kind": kind, "count": 1}
            ).raise_for_status()

    run = await full_sync(client, tenant.admin, connector_id)

    done = operations(small_shop)
    assert [(o.root_field, o.status) for o in done] == [
        ("customers", "FAILED"),  # the whole stream
        ("customers", "CANCELED"),  # its first half
        ("customers", "COMPLETED"),  # the first half's halves
        ("customers", "COMPLETED"),
        ("customers", "COMPLETED"),  # the second half
        ("orders", "COMPLETED"),
    ]
    assert [window(o) for o in done] == [
        (None, None),
        (None, window(done[4])[0]),
        (None, window(done[3])[0]),
        (window(done[2])[1], window(done[1])[1]),
        (window(done[1])[1], None),
        (None, None),
    ]
    assert run["attempts"] == 1, "recovered inside the job, from the checkpointed operation"
    assert (run["customers"], run["orders"]) == (answers["customer_count"], answers["order_count"])
    await assert_links_match(client, tenant.admin, answers)


def window(operation: Any) -> tuple[int | None, int | None]:
    """The `updated_at` range `[from, to)` the sandbox ran the export over (None: open)."""
    search = operation.search
    high = search.max_updated + 1 if search.max_updated is not None else None
    return search.min_updated, high


def inject_faults(shop: Shop, kind: str, count: int) -> None:
    with shop.sandbox.client() as sandbox:
        sandbox.post(
            "/sandbox/faults", json={"platform": "shopify", "kind": kind, "count": count}
        ).raise_for_status()


async def test_failing_exports_of_both_streams_complete_over_windows_with_exact_data(
    client: httpx.AsyncClient,
    tenant: Any,
    small_shop: Shop,
    owner_conn: psycopg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shopify_source, "EARLY_PAGES", 0)
    connector_id = await grant(client, tenant, small_shop, **ALL_HISTORY)
    answers = expected(small_shop)
    inject_faults(small_shop, "bulk_fail", 2)  # the first two customers' exports
    start = shopify_bulk.BulkRunner.start
    injected: list[str] = []

    async def start_failing_orders(self: Any, bulk_query: str) -> Any:
        if "orders" in bulk_query and not injected:  # the first two orders' exports too
            injected.append(bulk_query)
            inject_faults(small_shop, "bulk_fail", 2)
        return await start(self, bulk_query)

    monkeypatch.setattr(shopify_bulk.BulkRunner, "start", start_failing_orders)

    run = await full_sync(client, tenant.admin, connector_id)

    done = operations(small_shop)
    for stream in ("customers", "orders"):
        ran = [o for o in done if o.root_field == stream]
        assert [o.status for o in ran] == ["FAILED", "FAILED"] + ["COMPLETED"] * 3
        assert [window(o) for o in ran] == [
            (None, None),
            (None, window(ran[4])[0]),
            (None, window(ran[3])[0]),
            (window(ran[2])[1], window(ran[1])[1]),
            (window(ran[1])[1], None),
        ]
        assert "updated_at:<'" in ran[2].query and "updated_at:>='" in ran[3].query
        assert sum(o.root_object_count for o in ran[2:]) == ran[0].root_object_count
    assert run["attempts"] == 1
    assert (run["customers"], run["orders"]) == (answers["customer_count"], answers["order_count"])
    await assert_links_match(client, tenant.admin, answers)
    # every order with exactly its lines: each window's file joined children to parents
    orders = visible_orders(small_shop, all_history=True)
    assert stored_lines(owner_conn, connector_id) == sandbox_lines(orders)
    stored = snapshot(owner_conn, connector_id)
    assert {row[0] for row in stored["orders"]} == {str(o.id) for o in orders}
    customers = small_shop.store.data.customers.iter_by_id()
    assert {row[0] for row in stored["customers"]} == {str(c.id) for c in customers}


def test_windows_halve_down_to_the_minimum() -> None:
    now = datetime(2026, 5, 1, tzinfo=UTC)
    earliest = now - timedelta(days=8)
    halves = windows.split(windows.WHOLE, earliest=earliest, now=now)
    assert halves == [[None, "2026-04-27T00:00:00Z"], ["2026-04-27T00:00:00Z", None]]
    first = windows.split(halves[0], earliest=earliest, now=now)
    assert first == [
        [None, "2026-04-25T00:00:00Z"],
        ["2026-04-25T00:00:00Z", "2026-04-27T00:00:00Z"],
    ]
    assert windows.split(first[1], earliest=earliest, now=now) == [
        ["2026-04-25T00:00:00Z", "2026-04-26T00:00:00Z"],
        ["2026-04-26T00:00:00Z", "2026-04-27T00:00:00Z"],
    ]
    assert (
        windows.split(["2026-04-25T00:00:00Z", "2026-04-26T00:00:00Z"], earliest=earliest, now=now)
        is None
    )
    assert windows.split(windows.WHOLE, earliest=None, now=now) is None, "an empty stream"
    assert windows.search(first[1]) == (
        "updated_at:>='2026-04-25T00:00:00Z' AND updated_at:<'2026-04-27T00:00:00Z'"
    )
    assert windows.search(windows.WHOLE) is None


async def test_a_pull_killed_mid_export_resumes_the_same_operation(
    client: httpx.AsyncClient,
    tenant: Any,
    small_shop: Shop,
    owner_conn: psycopg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shopify_source, "PAGE_SIZE", 4)
    monkeypatch.setattr(shopify_source, "BULK_PAGE_MAX", 4)
    monkeypatch.setattr(shopify_source, "EARLY_PAGES", 0)
    connector_id = await grant(client, tenant, small_shop, **ALL_HISTORY)
    answers = expected(small_shop)
    run_id = await start_sync(client, tenant.admin, connector_id, "full")
    tenant_id = tenant.tenant_id

    def checkpoint() -> dict[str, Any]:
        row = owner_conn.execute(
            "SELECT checkpoint FROM sync_runs WHERE id = %s", (uuid.UUID(run_id),)
        ).fetchone()
        return dict(row[0])

    # killed while the customers' file downloads: after the operation's checkpoint + 2 pages
    asked = iter(range(100))
    with pytest.raises(engine.RunCancelled):
        await engine.run_pull(tenant_id, uuid.UUID(run_id), lambda: next(asked) >= 3)
    customers = checkpoint()["customers"]["position"]
    assert customers["lines"] == 8 and customers["bulk"] == operations(small_shop)[0].gid

    # killed again once some orders are in
    def orders_started() -> bool:
        return "after" in ((checkpoint().get("orders") or {}).get("position") or {})

    with pytest.raises(engine.RunCancelled):
        await engine.run_pull(tenant_id, uuid.UUID(run_id), orders_started)
    assert orders_started()

    # the worker picks the job up and finishes from the checkpoints
    run = await run_until_ended(client, tenant.admin, run_id)

    assert run["status"] == "succeeded"
    assert [(o.root_field, o.status) for o in operations(small_shop)] == [
        ("customers", "COMPLETED"),
        ("orders", "COMPLETED"),
    ], "no second export was started"
    assert (run["customers"], run["orders"]) == (answers["customer_count"], answers["order_count"])
    await assert_links_match(client, tenant.admin, answers)
    orders = visible_orders(small_shop, all_history=True)
    assert stored_lines(owner_conn, connector_id) == sandbox_lines(orders)


async def test_a_pull_killed_inside_a_window_resumes_its_operation_and_skips_done_windows(
    client: httpx.AsyncClient,
    tenant: Any,
    small_shop: Shop,
    owner_conn: psycopg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shopify_source, "PAGE_SIZE", 2)
    monkeypatch.setattr(shopify_source, "BULK_PAGE_MAX", 2)
    monkeypatch.setattr(shopify_source, "EARLY_PAGES", 0)
    connector_id = await grant(client, tenant, small_shop, **ALL_HISTORY)
    answers = expected(small_shop)
    inject_faults(small_shop, "bulk_fail", 1)  # the customers' whole export: two windows
    run_id = await start_sync(client, tenant.admin, connector_id, "full")
    tenant_id = tenant.tenant_id

    def position() -> dict[str, Any]:
        row = owner_conn.execute(
            "SELECT checkpoint FROM sync_runs WHERE id = %s", (uuid.UUID(run_id),)
        ).fetchone()
        return dict((row[0].get("customers") or {}).get("position") or {})

    # killed while the first window's file downloads
    with pytest.raises(engine.RunCancelled):
        await engine.run_pull(tenant_id, uuid.UUID(run_id), lambda: "lines" in position())
    first = position()
    assert len(first["windows"]) == 2 and first["done"] == 0
    assert first["bulk"] == operations(small_shop)[1].gid and first["lines"] == 2

    # killed again inside the second window
    with pytest.raises(engine.RunCancelled):
        await engine.run_pull(
            tenant_id,
            uuid.UUID(run_id),
            lambda: position().get("done") == 1 and "lines" in position(),
        )
    second = position()
    assert second["windows"] == first["windows"][1:] and second["done"] == 1
    assert second["bulk"] == operations(small_shop)[2].gid

    run = await run_until_ended(client, tenant.admin, run_id)

    assert run["status"] == "succeeded"
    assert [(o.root_field, o.status) for o in operations(small_shop)] == [
        ("customers", "FAILED"),
        ("customers", "COMPLETED"),
        ("customers", "COMPLETED"),
        ("orders", "COMPLETED"),
    ], "each window exported once, its operation resumed after each kill"
    assert (run["customers"], run["orders"]) == (answers["customer_count"], answers["order_count"])
    await assert_links_match(client, tenant.admin, answers)


def arm_faults_before_each_api_call(
    monkeypatch: pytest.MonkeyPatch, shop: Shop, schedule: list[list[dict[str, Any]]]
) -> list[Fault]:
    """Switch the schedule's faults on, a group just before each GraphQL call, so every
    kind strikes a known call of the pull (count faults fire on the next matching requests:
    the call about to go, then its retries). A full sync makes at least four calls (start
    and poll each export). Returns the faults armed."""
    armed: list[Fault] = []
    pending = iter(schedule)
    execute = ShopifyClient.execute

    async def execute_after_arming(self: Any, gql: str, variables: Any = None) -> Any:
        for spec in next(pending, []):
            armed.append(shop.sandbox.state.faults.add({**spec, "platform": "shopify"}))
        return await execute(self, gql, variables)

    monkeypatch.setattr(ShopifyClient, "execute", execute_after_arming)
    return armed


async def test_http_faults_are_retried_and_a_fresh_pull_gets_exactly_the_shop(
    client: httpx.AsyncClient,
    tenant: Any,
    small_shop: Shop,
    owner_conn: psycopg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(get_settings(), "shopify_timeout_seconds", 0.5)
    monkeypatch.setattr(get_settings(), "shopify_max_retries", 3)  # 4 tries per call
    connector_id = await grant(client, tenant, small_shop, **ALL_HISTORY)
    api = {"path_contains": f"/shopify/{small_shop.domain}/admin/api/"}
    downloads = {"path_contains": f"/shopify/{small_shop.domain}/bulk/"}
    schedule = [
        [{"kind": "429", "count": 3, "retry_after_seconds": 0.2, **api}],  # a burst
        [
            {"kind": "slow", "count": 1, "delay_seconds": 1.5, **api},  # beyond the timeout
            {"kind": "5xx", "count": 2, "status": 502, **api},
        ],
        [{"kind": "truncate", "count": 1, **api}, {"kind": "drop", "count": 1, **api}],
        # outlasts the client's retries: the job's first attempt fails, the next one
        # resumes from the checkpoint (the export's operation id)
        [{"kind": "5xx", "count": 4, "status": 503, **api}],
    ]
    armed = arm_faults_before_each_api_call(monkeypatch, small_shop, schedule)
    cut_files = [  # the first two downloads of an export's file are cut
        small_shop.sandbox.state.faults.add(
            {"platform": "shopify", "kind": kind, "count": 1, **downloads}
        )
        for kind in ("truncate", "drop")
    ]

    run = await full_sync(client, tenant.admin, connector_id)

    assert [(f.kind, f.fired) for f in armed] == [
        (spec["kind"], spec["count"]) for group in schedule for spec in group
    ]
    assert [(f.kind, f.fired) for f in cut_files] == [("truncate", 1), ("drop", 1)]
    with small_shop.sandbox.client() as sandbox:
        left = sandbox.get("/sandbox/faults").json()["faults"]
    assert [f for f in left if small_shop.domain in (f["path_contains"] or "")] == []
    assert run["attempts"] == 2
    await assert_exactly_the_shop(client, tenant.admin, owner_conn, connector_id, small_shop, run)


# --- incremental sync, history, credentials ---------------------------------------------


async def test_incremental_sync_reads_changes_and_old_orders_do_not_fail(
    client: httpx.AsyncClient, tenant: Any, small_shop: Shop, owner_conn: psycopg.Connection
) -> None:
    connector_id = await grant(client, tenant, small_shop)  # no read_all_orders: 60 days
    answers = expected(small_shop)
    recent = visible_orders(small_shop, all_history=False)
    assert len(recent) < answers["order_count"], "the shop has orders older than 60 days"

    first = await full_sync(client, tenant.admin, connector_id)
    assert first["orders"] == len(recent)
    assert stored_lines(owner_conn, connector_id) == sandbox_lines(recent)

    email = sorted(answers["customers_by_email"])[0]
    customer_id = answers["customers_by_email"][email][0]
    small_shop.admin(
        "PATCH", f"/customers/{customer_id}", json={"email": "Moved.Customer@Example.org"}
    )
    order = recent[0]
    small_shop.admin("PATCH", f"/orders/{order.id}", json={"financial_status": "REFUNDED"})

    run_id = await start_sync(client, tenant.admin, connector_id, "incremental")
    run = await run_until_ended(client, tenant.admin, run_id)

    assert run["status"] == "succeeded" and run["mode"] == "incremental"
    assert 1 <= run["customers"] < answers["customer_count"], "only changes (and the overlap)"
    assert 1 <= run["orders"] < len(recent)
    found = await lookup(client, tenant.admin, "email", ["moved.customer@example.org", email])
    assert str(customer_id) in found[0] and str(customer_id) not in found[1]
    status = owner_conn.execute(
        "SELECT status FROM orders WHERE connector_id = %s AND order_id = %s",
        (uuid.UUID(connector_id), str(order.id)),
    ).fetchone()
    assert status == ("REFUNDED",)
    assert stored_lines(owner_conn, connector_id) == sandbox_lines(recent), "lines kept whole"
    assert len(operations(small_shop)) == 2, "incremental syncs use no bulk operation"


async def test_a_revoked_token_fails_the_run_and_asks_for_reauthorization(
    client: httpx.AsyncClient, tenant: Any, small_shop: Shop
) -> None:
    connector_id = await grant(client, tenant, small_shop)
    run_id = await start_sync(client, tenant.admin, connector_id, "full")
    small_shop.admin("POST", "/uninstall")  # every token dies (the webhook goes elsewhere)

    run = await run_until_ended(client, tenant.admin, run_id)

    assert run["status"] == "failed" and run["attempts"] == 1
    assert "Grant Access again" in run["last_error"]
    connector = (await client.get(f"/v1/connectors/{connector_id}", headers=tenant.admin)).json()
    assert connector["state"] == "needs_reauthorization"
