"""Pulls survive killed workers and never run twice at once (DESIGN.md §2.4, §8).

Real worker processes (`athos-identity worker`) are SIGKILLed at random moments during a
sync of a few thousand records, then restarted; the final data must equal a clean sync's.
"""

from __future__ import annotations

import asyncio
import os
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
    expected_answers,
    granted_bigcommerce_connector,
    run_until_ended,
    snapshot,
    start_sync,
)

from athos_identity.sync import engine
from support import TEST_MASTER_SECRET

pytest_plugins = ["bigcommerce_fixtures"]

STALLED_SECONDS = 2.0


@pytest.fixture
def big_store(bc_store: Any) -> Any:
    """A store big enough that a pull takes a while: 2,000 customers and 2,000 orders."""
    store_hash = "k" + uuid.uuid4().hex[:10]
    with bc_store.sandbox.client() as sandbox:
        sandbox.post(
            "/sandbox/bigcommerce/stores",
            json={"store_hash": store_hash, "customers": 2000, "orders": 2000, "plan": "unlimited"},
        ).raise_for_status()
    bc_store.store_hash = store_hash
    bc_store.token = bc_store.new_account(
        ["store_v2_customers_read_only", "store_v2_orders_read_only"]
    )
    return bc_store


class Workers:
    """`athos-identity worker` processes against the test database and the sandbox."""

    def __init__(self, database_url: str, sandbox_url: str) -> None:
        self.env = {
            **os.environ,
            "ATHOS_DATABASE_URL": database_url,
            "ATHOS_MASTER_SECRET": TEST_MASTER_SECRET,
            "ATHOS_BIGCOMMERCE_BASE_URL": f"{sandbox_url}/bigcommerce",
            "ATHOS_WORKER_HEARTBEAT_SECONDS": "0.5",
            "ATHOS_WORKER_STALLED_SECONDS": str(STALLED_SECONDS),
            "ATHOS_LOG_LEVEL": "WARNING",
        }
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "athos_identity", "worker", "--concurrency", "1"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def workers(test_database: Any, big_store: Any) -> Iterator[Workers]:
    pool = Workers(test_database.sqlalchemy_url, big_store.sandbox.url)
    yield pool
    pool.stop_all()


async def wait_for_run(
    client: httpx.AsyncClient, admin: dict, run_id: str, seconds: float = 180
) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run = (await client.get(f"/v1/syncs/{run_id}", headers=admin)).json()
        if run["status"] in ("succeeded", "failed", "cancelled"):
            return dict(run)
        await asyncio.sleep(0.3)
    raise AssertionError(f"run {run_id} did not end: {run}")


async def wait_for_progress(
    client: httpx.AsyncClient, admin: dict, run_id: str, pages_before: int
) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run = (await client.get(f"/v1/syncs/{run_id}", headers=admin)).json()
        if run["pages"] > pages_before or run["status"] not in ("queued", "running"):
            return dict(run)
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


async def test_killed_workers_resume_and_the_data_equals_a_clean_sync(
    client: httpx.AsyncClient, tenant: Any, big_store: Any, workers: Workers, owner_conn
) -> None:
    connector_id = await granted_bigcommerce_connector(client, tenant.admin, big_store)
    run_id = await start_sync(client, tenant.admin, connector_id, "full")
    rng = random.Random(1234)
    kills = 0
    pages_seen = 0
    for _ in range(3):
        worker = workers.start()
        # Kill at a random moment after this worker has committed at least one page.
        run = await wait_for_progress(client, tenant.admin, run_id, pages_seen)
        if run["status"] != "running":
            break
        await asyncio.sleep(rng.uniform(0.0, 0.6))
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        kills += 1
        pages_seen = (await client.get(f"/v1/syncs/{run_id}", headers=tenant.admin)).json()["pages"]
        await asyncio.sleep(STALLED_SECONDS + 0.5)  # its heartbeat goes stale
    workers.start()
    killed_run = await wait_for_run(client, tenant.admin, run_id)
    assert killed_run["status"] == "succeeded", killed_run
    assert kills >= 1, "the sync finished before any kill: make the store bigger"
    assert killed_run["attempts"] >= 2, "the run was resumed, not started over in one go"
    after_kills = snapshot(owner_conn, connector_id)

    expected = expected_answers(big_store)
    assert len(after_kills["customers"]) == expected["customer_count"]
    assert len({o[0] for o in after_kills["orders"]}) == expected["order_count"]

    clean_id = await start_sync_beside_the_scheduler(client, tenant.admin, connector_id, "full")
    clean = await wait_for_run(client, tenant.admin, clean_id)
    assert clean["status"] == "succeeded" and clean["attempts"] == 1
    assert snapshot(owner_conn, connector_id) == after_kills


async def test_two_workers_never_pull_one_store_at_once(
    client: httpx.AsyncClient, tenant: Any, big_store: Any, workers: Workers, test_database: Any
) -> None:
    connector_id = await granted_bigcommerce_connector(client, tenant.admin, big_store)
    workers.start()
    workers.start()
    run_id = await start_sync_beside_the_scheduler(client, tenant.admin, connector_id, "full")
    most_pullers = 0
    with psycopg.connect(test_database.url, autocommit=True) as conn:
        while True:
            pullers = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            ).fetchone()[0]
            doing = conn.execute(
                "SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing'"
                " AND task_name = 'sync.pull'"
            ).fetchone()[0]
            most_pullers = max(most_pullers, pullers, doing)
            run = (await client.get(f"/v1/syncs/{run_id}", headers=tenant.admin)).json()
            if run["status"] not in ("queued", "running"):
                break
            await asyncio.sleep(0.1)
    assert run["status"] == "succeeded"
    assert most_pullers == 1


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
