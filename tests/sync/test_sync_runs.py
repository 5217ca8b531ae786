"""Sync runs as users see them: progress and ETA, cancelling, the scheduler, conflicts,
runs that lost their job, webhook writes during a full sync, `athos-identity sync --follow`.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "connectors"))

from sync_support import (
    background_worker,
    expected_answers,
    granted_bigcommerce_connector,
    run_until_ended,
    served_api,
    slow_down,
    snapshot,
    start_sync,
    unlimited_store,
    wait_for_run_where,
)

from athos_identity.db import tenant_transaction
from athos_identity.identity import repository as identity
from athos_identity.identity.records import CustomerRecord, hash_customer
from athos_identity.identity.service import hasher_for
from athos_identity.sales import repository as sales
from athos_identity.sales.records import OrderRecord, hash_order
from athos_identity.sync import repository as runs
from athos_identity.sync import service
from support import TEST_MASTER_SECRET

pytest_plugins = ["bigcommerce_fixtures"]

ENDED = ("succeeded", "failed", "cancelled")


@pytest.fixture
def mid_store(bc_store: Any) -> Any:
    """1,000 customers and 1,000 orders: a few pages of each stream."""
    return unlimited_store(bc_store, 1_000, 1_000)


def records(run: dict[str, Any]) -> int:
    return int(run["customers"] + run["orders"])


async def test_progress_estimates_stay_ahead_of_the_records_through_both_streams(
    client: httpx.AsyncClient, tenant: Any, mid_store: Any
) -> None:
    """BigCommerce's V2 orders give no total: the estimate must not stay at the customer
    count (a full bar and an ETA of 0 with every order still to pull)."""
    slow_down(mid_store, 0.15)
    expected = expected_answers(mid_store)
    connector_id = await granted_bigcommerce_connector(client, tenant.admin, mid_store)
    run_id = await start_sync(client, tenant.admin, connector_id, "full")
    samples: list[dict[str, Any]] = []
    async with background_worker():
        while True:
            run = (await client.get(f"/v1/syncs/{run_id}", headers=tenant.admin)).json()
            if run["status"] in ENDED:
                break
            if run["status"] == "running" and run["pages"]:
                samples.append(run)
            await asyncio.sleep(0.1)
    assert run["status"] == "succeeded", run

    customers = [s for s in samples if s["stream"] == "customers" and s["orders"] == 0]
    orders = [s for s in samples if s["stream"] == "orders" and s["orders"] > 0]
    assert customers and orders, "the run was too quick to watch both streams"
    for sample in customers:
        assert sample["estimated_total"] == expected["customer_count"], sample
        assert sample["records_per_second"] > 0, sample
        left = sample["estimated_total"] - records(sample)
        assert sample["eta_seconds"] == pytest.approx(left / sample["records_per_second"], abs=0.1)
        if left > sample["records_per_second"]:  # over a second to go
            assert sample["eta_seconds"] >= 1, sample
    everything = expected["customer_count"] + expected["order_count"]
    for sample in orders:  # the customers pulled plus the orders' count (GET /v2/orders/count)
        assert sample["estimated_total"] == everything, sample
        assert sample["eta_seconds"] is not None, sample
    for sample in samples:
        if sample["estimated_total"] is not None:
            assert records(sample) <= sample["estimated_total"], sample
        else:
            assert sample["eta_seconds"] is None, sample
    assert (
        run["estimated_total"]
        == records(run)
        == expected["customer_count"] + expected["order_count"]
    )


async def test_cancelling_a_running_pull_stops_it_and_keeps_what_it_wrote(
    client: httpx.AsyncClient, tenant: Any, mid_store: Any, owner_conn: psycopg.Connection
) -> None:
    slow_down(mid_store, 0.3)
    connector_id = await granted_bigcommerce_connector(client, tenant.admin, mid_store)
    run_id = await start_sync(client, tenant.admin, connector_id, "full")
    async with background_worker():
        await wait_for_run_where(
            client, tenant.admin, run_id, lambda r: r["status"] == "running" and r["pages"] >= 1
        )
        cancelled = await client.post(f"/v1/syncs/{run_id}/cancel", headers=tenant.admin)
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        deadline = asyncio.get_running_loop().time() + 10
        while owner_conn.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'sync.pull'"
            " AND status IN ('todo', 'doing')"
        ).fetchone()[0]:
            assert asyncio.get_running_loop().time() < deadline, "the pull went on"
            await asyncio.sleep(0.1)
        stopped = (await client.get(f"/v1/syncs/{run_id}", headers=tenant.admin)).json()
        await asyncio.sleep(1.0)  # nothing is written after the job ended
    final = (await client.get(f"/v1/syncs/{run_id}", headers=tenant.admin)).json()
    assert final["status"] == "cancelled" and final["finished_at"], final
    assert final["pages"] == stopped["pages"]
    expected = expected_answers(mid_store)
    assert 0 < records(final) < expected["customer_count"] + expected["order_count"]
    kept = snapshot(owner_conn, connector_id)
    assert len(kept["customers"]) == final["customers"]


async def test_the_scheduler_starts_incremental_pulls_of_granted_connectors_only(
    client: httpx.AsyncClient, tenant: Any, other_tenant: Any, bc_store: Any
) -> None:
    granted = await granted_bigcommerce_connector(client, tenant.admin, bc_store)
    elsewhere = await granted_bigcommerce_connector(client, other_tenant.admin, bc_store)
    not_granted = await client.post(
        "/v1/connectors",
        json={"platform": "bigcommerce", "name": "later", "store": "z" + uuid.uuid4().hex[:8]},
        headers=tenant.admin,
    )
    assert not_granted.status_code == 201, not_granted.text

    assert await service.start_due_incremental_runs() == 2
    assert await service.start_due_incremental_runs() == 0  # both still queued
    for keys, connector_id in ((tenant, granted), (other_tenant, elsewhere)):
        listed = await client.get(f"/v1/connectors/{connector_id}/syncs", headers=keys.admin)
        [run] = listed.json()
        assert run["mode"] == "incremental"
        ended = await run_until_ended(client, keys.admin, run["id"])
        assert ended["status"] == "succeeded" and ended["customers"] == 20, ended
    idle = await client.get(
        f"/v1/connectors/{not_granted.json()['id']}/syncs", headers=tenant.admin
    )
    assert idle.json() == []
    assert await service.start_due_incremental_runs() == 2  # the next round


async def test_a_queued_job_holding_the_store_is_named_in_the_conflict(
    client: httpx.AsyncClient, tenant: Any, bc_store: Any, owner_conn: psycopg.Connection
) -> None:
    connector_id = await granted_bigcommerce_connector(client, tenant.admin, bc_store)
    first = await start_sync(client, tenant.admin, connector_id, "full")
    # Its run ended by hand while the job still waits: the store's queue slot is taken.
    owner_conn.execute("UPDATE sync_runs SET status = 'failed' WHERE id = %s", (first,))
    response = await client.post(
        f"/v1/connectors/{connector_id}/syncs", json={"mode": "full"}, headers=tenant.admin
    )
    assert response.status_code == 409, response.text
    assert response.json()["run_id"] == first
    assert first in response.json()["detail"]


async def orphaned_run(tenant: Any, connector_id: str, conn: psycopg.Connection) -> str:
    """A queued run whose starter died before queueing its job, a while ago."""
    async with tenant_transaction(tenant.tenant_id) as session:
        run = await runs.insert_run(session, tenant.tenant_id, uuid.UUID(connector_id), "full")
    conn.execute(
        "UPDATE sync_runs SET created_at = now() - interval '10 minutes' WHERE id = %s",
        (run.id,),
    )
    return str(run.id)


async def test_a_run_that_lost_its_job_gets_one_when_its_store_is_synced_again(
    client: httpx.AsyncClient, tenant: Any, bc_store: Any, owner_conn: psycopg.Connection
) -> None:
    connector_id = await granted_bigcommerce_connector(client, tenant.admin, bc_store)
    run_id = await orphaned_run(tenant, connector_id, owner_conn)
    response = await client.post(
        f"/v1/connectors/{connector_id}/syncs", json={"mode": "full"}, headers=tenant.admin
    )
    assert response.status_code == 409 and response.json()["run_id"] == run_id
    run = await run_until_ended(client, tenant.admin, run_id, seconds=20)
    assert run["status"] == "succeeded" and run["customers"] == 20, run


async def test_the_scheduler_gives_a_job_to_a_run_that_lost_it(
    client: httpx.AsyncClient, tenant: Any, bc_store: Any, owner_conn: psycopg.Connection
) -> None:
    connector_id = await granted_bigcommerce_connector(client, tenant.admin, bc_store)
    run_id = await orphaned_run(tenant, connector_id, owner_conn)
    assert await service.start_due_incremental_runs() == 0  # the store is busy with it
    run = await run_until_ended(client, tenant.admin, run_id, seconds=20)
    assert run["status"] == "succeeded" and run["mode"] == "full", run


async def test_a_fresh_queued_run_is_not_taken_for_an_orphan(
    client: httpx.AsyncClient, tenant: Any, bc_store: Any, owner_conn: psycopg.Connection
) -> None:
    """A start in progress (its job not queued yet) must not get a second job."""
    connector_id = await granted_bigcommerce_connector(client, tenant.admin, bc_store)
    async with tenant_transaction(tenant.tenant_id) as session:
        run = await runs.insert_run(session, tenant.tenant_id, uuid.UUID(connector_id), "full")
    assert not await service.queue_orphaned_run(tenant.tenant_id, run.id)
    owner_conn.execute(
        "UPDATE sync_runs SET created_at = now() - interval '10 minutes' WHERE id = %s",
        (run.id,),
    )
    assert await service.queue_orphaned_run(tenant.tenant_id, run.id)
    assert not await service.queue_orphaned_run(tenant.tenant_id, run.id)  # it has one now


async def write_as_webhooks_do(tenant_id: uuid.UUID, connector_id: str, suffix: str) -> None:
    """A customer and an order arriving by webhook (BigCommerce's hook worker's writes)."""
    cid = uuid.UUID(connector_id)
    hasher = hasher_for(tenant_id)
    customer = hash_customer(
        CustomerRecord(f"99{suffix}", emails=(f"hook{suffix}@example.com",)), hasher
    )
    order = hash_order(
        OrderRecord(
            f"98{suffix}",
            customer_id=f"99{suffix}",
            email=f"hook{suffix}@example.com",
            currency="USD",
            placed_at=datetime.now(UTC),
            updated_at=datetime.now(UTC),
        ),
        hasher,
    )
    async with tenant_transaction(tenant_id) as session:
        await identity.replace_customer_links(session, tenant_id, cid, [customer])
        await identity.mark_customers_seen(session, tenant_id, cid, [customer.customer_id], None)
        await sales.upsert_orders(session, tenant_id, cid, [order])


async def test_a_full_sync_keeps_what_webhooks_wrote_while_it_ran(
    client: httpx.AsyncClient, tenant: Any, mid_store: Any, owner_conn: psycopg.Connection
) -> None:
    connector_id = await granted_bigcommerce_connector(client, tenant.admin, mid_store)
    await write_as_webhooks_do(tenant.tenant_id, connector_id, "0001")  # before: gone since
    slow_down(mid_store, 0.1)
    run_id = await start_sync(client, tenant.admin, connector_id, "full")
    async with background_worker():
        await wait_for_run_where(
            client, tenant.admin, run_id, lambda r: r["status"] == "running" and r["pages"] >= 1
        )
        await write_as_webhooks_do(tenant.tenant_id, connector_id, "0002")  # during the export
        run = await wait_for_run_where(client, tenant.admin, run_id, lambda r: r["status"] in ENDED)
    assert run["status"] == "succeeded", run
    kept = snapshot(owner_conn, connector_id)
    customers = {c for (c,) in kept["customers"]}
    orders = {o[0] for o in kept["orders"]}
    assert "990002" in customers and "980002" in orders, "the webhook's writes were swept"
    assert any(link[3] == "990002" for link in kept["links"])
    assert "990001" not in customers and "980001" not in orders, "stale rows must be swept"
    assert run["deleted"] == 2


async def follow(api: str, key: str, connector_id: str, data_dir: Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "athos_identity",
        "sync",
        connector_id,
        "--full",
        "--follow",
        "--url",
        api,
        env={
            **os.environ,
            "ATHOS_API_KEY": key,
            "ATHOS_DATA_DIR": str(data_dir),
            "ATHOS_MASTER_SECRET": TEST_MASTER_SECRET,
            "COLUMNS": "200",
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def active_run_of(client: httpx.AsyncClient, admin: dict, connector_id: str) -> str:
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        listed = await client.get(f"/v1/connectors/{connector_id}/syncs", headers=admin)
        active = [r for r in listed.json() if r["status"] == "running" and r["pages"]]
        if active:
            return str(active[0]["id"])
        assert asyncio.get_running_loop().time() < deadline, "no run started"
        await asyncio.sleep(0.1)


async def test_sync_follow_watches_the_run_to_its_end(
    client: httpx.AsyncClient,
    tenant: Any,
    mid_store: Any,
    test_database: Any,
    tmp_path: Path,
) -> None:
    connector_id = await granted_bigcommerce_connector(client, tenant.admin, mid_store)
    expected = expected_answers(mid_store)
    with served_api(test_database.sqlalchemy_url) as api:
        async with background_worker():
            code, output = await follow(api, tenant.admin_key, connector_id, tmp_path)
            assert code == 0, output
            assert "records" in output, output  # the progress line
            customers, orders = expected["customer_count"], expected["order_count"]
            assert f"succeeded: {customers:,} customers, {orders:,} orders" in output, output

            slow_down(mid_store, 0.3)
            following = asyncio.create_task(follow(api, tenant.admin_key, connector_id, tmp_path))
            run_id = await active_run_of(client, tenant.admin, connector_id)
            # a second --follow while that run goes (as when the scheduler started one):
            # it watches the running one instead of failing
            second = asyncio.create_task(follow(api, tenant.admin_key, connector_id, tmp_path))
            await asyncio.sleep(3)
            cancelled = await client.post(f"/v1/syncs/{run_id}/cancel", headers=tenant.admin)
            assert cancelled.status_code == 200, cancelled.text
            code, output = await following
            second_code, second_output = await second
    assert code == 1, output  # the run did not succeed: scripts see it
    assert "cancelled:" in output, output
    assert f"following run {run_id}" in second_output, second_output
    assert second_code == 1 and "cancelled:" in second_output, second_output
