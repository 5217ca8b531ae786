"""Pulls survive killed workers and dropped connections, and never run twice at once
(DESIGN.md §2.4, §8).

Real worker processes (`athos-identity worker`) against the test database and the sandbox:
SIGKILLed at random moments, stopped (SIGSTOP) while a second worker takes their job, cut
off from the database. The final data must equal a clean sync's.
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "connectors"))

from sync_support import (
    STALLED_SECONDS,
    Workers,
    expected_answers,
    granted_bigcommerce_connector,
    key_translation,
    live_workers,
    run_until_ended,
    slow_down,
    snapshot,
    start_sync,
    translated,
    unlimited_store,
)

from athos_identity.sync import engine

pytest_plugins = ["bigcommerce_fixtures"]

# The stalled-job retry task runs every 20 s: a run taken over through it waits that long.
PERIODIC_RETRY_SECONDS = 20


@pytest.fixture
def big_store(bc_store: Any) -> Any:
    """A store big enough that a pull takes a while: 2,000 customers and 2,000 orders."""
    return unlimited_store(bc_store, 2_000, 2_000)


@pytest.fixture
def workers(test_database: Any, big_store: Any) -> Iterator[Workers]:
    pool = Workers(test_database.sqlalchemy_url, big_store.sandbox.url)
    yield pool
    pool.stop_all()


async def get_run(client: httpx.AsyncClient, admin: dict, run_id: str) -> dict[str, Any]:
    return dict((await client.get(f"/v1/syncs/{run_id}", headers=admin)).json())


async def wait_for_run(
    client: httpx.AsyncClient, admin: dict, run_id: str, seconds: float = 180
) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run = await get_run(client, admin, run_id)
        if run["status"] in ("succeeded", "failed", "cancelled"):
            return run
        await asyncio.sleep(0.3)
    raise AssertionError(f"run {run_id} did not end: {run}")


async def wait_for_progress(
    client: httpx.AsyncClient, admin: dict, run_id: str, pages_before: int
) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run = await get_run(client, admin, run_id)
        if run["pages"] > pages_before or run["status"] not in ("queued", "running"):
            return run
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} made no progress")


async def start_sync_beside_the_scheduler(
    client: httpx.AsyncClient, admin: dict, connector_id: str, mode: str
) -> str:
    """Start a pull while real workers run: their scheduler may have started an incremental
    pull of this granted store a moment before (at a cron boundary, or on start-up within
    ten minutes of one); that run is waited out, as an operator would."""
    for _ in range(3):
        response = await client.post(
            f"/v1/connectors/{connector_id}/syncs", json={"mode": mode}, headers=admin
        )
        if response.status_code == 202:
            return str(response.json()["id"])
        assert response.status_code == 409, response.text
        scheduled = await wait_for_run(client, admin, response.json()["run_id"])
        assert scheduled["mode"] == "incremental", scheduled
    raise AssertionError("the store stayed busy")


async def wait_until_two_workers_live(conn: psycopg.Connection) -> None:
    deadline = time.monotonic() + 30
    while live_workers(conn) < 2:
        assert time.monotonic() < deadline, "the second worker did not start"
        await asyncio.sleep(0.1)


async def clean_copy(
    client: httpx.AsyncClient, tenant: Any, other_tenant: Any, store: Any, conn: psycopg.Connection
) -> dict[str, set[tuple]]:
    """A clean full sync of the same store by another tenant's connector, its keys turned
    into `tenant`'s (keyed hashes are per tenant): what the tested pull must end with."""
    reference = await granted_bigcommerce_connector(client, other_tenant.admin, store)
    run_id = await start_sync(client, other_tenant.admin, reference, "full")
    run = await run_until_ended(client, other_tenant.admin, run_id)
    assert run["status"] == "succeeded" and run["attempts"] == 1, run
    translation = key_translation(store, other_tenant.tenant_id, tenant.tenant_id)
    return translated(snapshot(conn, reference), translation)


def assert_counted_once(run: dict[str, Any], expected: dict[str, Any]) -> None:
    """Every record counted once: no page was written (and counted) by two pullers."""
    assert run["customers"] == expected["customer_count"], run
    assert run["orders"] == expected["order_count"], run


async def test_killed_workers_resume_and_the_data_equals_a_clean_sync(
    client: httpx.AsyncClient,
    tenant: Any,
    other_tenant: Any,
    big_store: Any,
    workers: Workers,
    owner_conn: psycopg.Connection,
) -> None:
    clean = await clean_copy(client, tenant, other_tenant, big_store, owner_conn)
    slow_down(big_store, 0.1)  # a pull of a few seconds: room for several kills
    connector_id = await granted_bigcommerce_connector(client, tenant.admin, big_store)
    run_id = await start_sync(client, tenant.admin, connector_id, "full")
    rng = random.Random()
    kills = 0
    pages_seen = 0
    for _ in range(4):
        worker = workers.start()
        # Kill at a random moment after this worker has committed at least one page.
        run = await wait_for_progress(client, tenant.admin, run_id, pages_seen)
        if run["status"] != "running":
            break
        await asyncio.sleep(rng.uniform(0.0, 0.3))
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        kills += 1
        pages_seen = (await get_run(client, tenant.admin, run_id))["pages"]
        await asyncio.sleep(STALLED_SECONDS + 0.5)  # its heartbeat goes stale
    workers.start()
    killed_run = await wait_for_run(client, tenant.admin, run_id)
    assert killed_run["status"] == "succeeded", killed_run
    assert kills >= 3, f"the sync finished after {kills} kills: make the store bigger"
    assert killed_run["attempts"] >= 4, "the run was resumed after each kill"
    assert_counted_once(killed_run, expected_answers(big_store))
    assert snapshot(owner_conn, connector_id) == clean


async def test_a_killed_workers_pull_is_taken_over_by_a_running_worker(
    client: httpx.AsyncClient,
    tenant: Any,
    big_store: Any,
    workers: Workers,
    owner_conn: psycopg.Connection,
) -> None:
    """No worker restarts: the survivor's periodic stalled-job retry frees the job."""
    slow_down(big_store, 0.3)
    connector_id = await granted_bigcommerce_connector(client, tenant.admin, big_store)
    first = workers.start()
    run_id = await start_sync_beside_the_scheduler(client, tenant.admin, connector_id, "full")
    await wait_for_progress(client, tenant.admin, run_id, 0)
    workers.start()  # its start-up retry of stalled jobs finds none: the first is alive
    await wait_until_two_workers_live(owner_conn)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = time.monotonic()

    run = await wait_for_run(client, tenant.admin, run_id, seconds=90)
    assert run["status"] == "succeeded", run
    assert run["attempts"] == 2, run
    assert time.monotonic() - killed_at < STALLED_SECONDS + PERIODIC_RETRY_SECONDS + 15
    expected = expected_answers(big_store)
    assert_counted_once(run, expected)
    assert len(snapshot(owner_conn, connector_id)["customers"]) == expected["customer_count"]


def open_transactions(conn: psycopg.Connection, application_name: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND application_name = %s AND xact_start IS NOT NULL",
        (application_name,),
    ).fetchone()
    return int(row[0]) if row else 0


def stop_between_transactions(process: subprocess.Popen[bytes], conn: psycopg.Connection) -> None:
    """SIGSTOP a worker outside any transaction of its own (one stopped inside would hold
    the run's row lock, and nothing else could write to the run until it resumes)."""
    while True:
        process.send_signal(signal.SIGSTOP)
        time.sleep(0.05)  # its statements in flight finish on the server
        if open_transactions(conn, "athos-stopped-worker") == 0:
            return
        process.send_signal(signal.SIGCONT)
        time.sleep(0.02)


async def test_a_job_retried_while_its_worker_still_lives_is_not_pulled_twice(
    client: httpx.AsyncClient,
    tenant: Any,
    big_store: Any,
    workers: Workers,
    owner_conn: psycopg.Connection,
) -> None:
    """A stopped (not dead) worker's job is retried as stalled on the second worker: that
    one must back off while the first holds the run, and both never write pages of it."""
    slow_down(big_store, 0.3)
    connector_id = await granted_bigcommerce_connector(client, tenant.admin, big_store)
    first = workers.start("athos-stopped-worker")
    run_id = await start_sync_beside_the_scheduler(client, tenant.admin, connector_id, "full")
    await wait_for_progress(client, tenant.admin, run_id, 0)
    workers.start()
    await wait_until_two_workers_live(owner_conn)

    stop_between_transactions(first, owner_conn)
    try:
        deadline = time.monotonic() + STALLED_SECONDS + PERIODIC_RETRY_SECONDS + 20
        while True:
            run = await get_run(client, tenant.admin, run_id)
            if "RunBusy" in (run["last_error"] or "") or run["attempts"] > 1:
                break  # the second worker tried the run
            assert time.monotonic() < deadline, f"the job was never retried: {run}"
            await asyncio.sleep(0.1)
    finally:
        first.send_signal(signal.SIGCONT)
    assert run["attempts"] == 1, "the second worker pulled a run the first still held"

    run = await wait_for_run(client, tenant.admin, run_id, seconds=90)
    assert run["status"] == "succeeded", run
    expected = expected_answers(big_store)
    assert_counted_once(run, expected)
    assert len(snapshot(owner_conn, connector_id)["customers"]) == expected["customer_count"]


async def test_database_connections_cut_mid_pull_are_retried_from_the_checkpoint(
    client: httpx.AsyncClient,
    tenant: Any,
    other_tenant: Any,
    big_store: Any,
    workers: Workers,
    owner_conn: psycopg.Connection,
) -> None:
    clean = await clean_copy(client, tenant, other_tenant, big_store, owner_conn)
    slow_down(big_store, 0.1)
    connector_id = await granted_bigcommerce_connector(client, tenant.admin, big_store)
    workers.start("athos-cut-worker")
    run_id = await start_sync_beside_the_scheduler(client, tenant.admin, connector_id, "full")
    cuts = 0
    pages_seen = 0
    while cuts < 2:
        run = await wait_for_progress(client, tenant.admin, run_id, pages_seen)
        assert run["status"] == "running", f"the run ended after {cuts} cuts: {run}"
        # The pull's own sessions, in the middle of a transaction (the job queue's are left
        # alone: procrastinate's resilience is not what is tested here).
        terminated = owner_conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'athos-cut-worker'"
            " AND xact_start IS NOT NULL AND query NOT ILIKE '%procrastinate%'"
        ).fetchone()[0]
        if terminated:
            cuts += 1
            pages_seen = run["pages"]
        await asyncio.sleep(0.01)

    run = await wait_for_run(client, tenant.admin, run_id, seconds=90)
    assert run["status"] == "succeeded", run
    assert run["attempts"] >= 2, run
    assert_counted_once(run, expected_answers(big_store))
    assert snapshot(owner_conn, connector_id) == clean


async def test_a_second_puller_of_the_same_run_backs_off(
    client: httpx.AsyncClient, tenant: Any, bc_store: Any
) -> None:
    connector_id = await granted_bigcommerce_connector(client, tenant.admin, bc_store)
    run_id = uuid.UUID(await start_sync(client, tenant.admin, connector_id, "full"))
    async with engine.exclusive_pull(run_id):
        with pytest.raises(engine.RunBusy):
            await engine.run_pull(tenant.tenant_id, run_id)
    assert await engine.run_pull(tenant.tenant_id, run_id) == "succeeded"
    run = await run_until_ended(client, tenant.admin, str(run_id))
    assert run["status"] == "succeeded"
