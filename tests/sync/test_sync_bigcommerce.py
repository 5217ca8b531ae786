"""Pulls of a BigCommerce store through the real job queue and worker, against the sandbox."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "connectors"))

from sync_support import (
    expected_answers,
    granted_bigcommerce_connector,
    run_jobs_until_idle,
    run_until_ended,
    snapshot,
    start_sync,
)

pytest_plugins = ["bigcommerce_fixtures"]  # bc_store: a fresh sandbox store with a full token


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


def _sha(normalized: str) -> str:
    import hashlib

    return hashlib.sha256(normalized.encode()).hexdigest()


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


async def test_faults_are_retried_and_the_data_is_exactly_right(
    client: httpx.AsyncClient, tenant: Any, bc_store: Any, owner_conn
) -> None:
    connector_id = await granted_bigcommerce_connector(client, tenant.admin, bc_store)
    clean = await full_sync(client, tenant.admin, connector_id)
    before = snapshot(owner_conn, connector_id)

    for kind in ("5xx", "429", "truncate", "drop"):
        bc_store.add_fault(kind=kind, rate=0.3)
    faulty = await full_sync(client, tenant.admin, connector_id)

    assert (faulty["customers"], faulty["orders"]) == (clean["customers"], clean["orders"])
    assert snapshot(owner_conn, connector_id) == before


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
