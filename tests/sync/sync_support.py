"""Helpers of the pull tests: a granted BigCommerce connector, workers, snapshots."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import psycopg

from athos_identity.jobs import open_jobs
from athos_identity.sync.tasks import PULLS_QUEUE
from support import TEST_MASTER_SECRET, free_port


async def granted_bigcommerce_connector(client: httpx.AsyncClient, admin: dict, store: Any) -> str:
    created = await client.post(
        "/v1/connectors",
        json={"platform": "bigcommerce", "name": "BC", "store": store.store_hash},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    connector_id = created.json()["id"]
    saved = await client.put(
        f"/v1/connectors/{connector_id}/bigcommerce/credentials",
        json={"store_hash": store.store_hash, "access_token": store.token},
        headers=admin,
    )
    assert saved.status_code == 200, saved.text
    return str(connector_id)


def unlimited_store(bc_store: Any, customers: int, orders: int) -> Any:
    """The BigCommerce fixture switched to a fresh store of that size (no rate limit), with
    a token that reads customers and orders."""
    store_hash = "u" + uuid.uuid4().hex[:10]
    with bc_store.sandbox.client() as sandbox:
        sandbox.post(
            "/sandbox/bigcommerce/stores",
            json={
                "store_hash": store_hash,
                "customers": customers,
                "orders": orders,
                "plan": "unlimited",
            },
        ).raise_for_status()
    bc_store.store_hash = store_hash
    bc_store.token = bc_store.new_account(
        ["store_v2_customers_read_only", "store_v2_orders_read_only"]
    )
    return bc_store


async def run_jobs_until_idle(queues: tuple[str, ...] = (PULLS_QUEUE,)) -> None:
    """A real procrastinate worker, in this process, until no pull is left (the periodic
    scheduler's queue is left alone: its timing is not the test's)."""
    jobs = await open_jobs()
    await jobs.run_worker_async(
        queues=list(queues),
        wait=False,
        install_signal_handlers=False,
        listen_notify=False,
        concurrency=1,
    )


async def run_until_ended(
    client: httpx.AsyncClient, admin: dict, run_id: str, seconds: float = 90
) -> dict[str, Any]:
    """Work the queue until the run ends; retries wait out their backoff in between."""
    deadline = time.monotonic() + seconds
    while True:
        await run_jobs_until_idle()
        run = (await client.get(f"/v1/syncs/{run_id}", headers=admin)).json()
        if run["status"] in ("succeeded", "failed", "cancelled"):
            return dict(run)
        assert time.monotonic() < deadline, f"run still {run['status']}: {run['last_error']}"
        await asyncio.sleep(0.5)


async def start_sync(client: httpx.AsyncClient, admin: dict, connector_id: str, mode: str) -> str:
    response = await client.post(
        f"/v1/connectors/{connector_id}/syncs", json={"mode": mode}, headers=admin
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def snapshot(conn: psycopg.Connection, connector_id: str) -> dict[str, set[tuple]]:
    """Everything a pull wrote for one connector, as comparable sets (timestamps left out)."""
    cid = uuid.UUID(connector_id)
    queries = {
        "links": "SELECT kind, key, key_version, customer_id FROM identity_links"
        " WHERE connector_id = %s",
        "customers": "SELECT customer_id FROM customers WHERE connector_id = %s",
        "orders": "SELECT order_id, customer_id, email_key, phone_key, currency, total, status,"
        " placed_at FROM orders WHERE connector_id = %s",
        "lines": "SELECT order_id, line_id, product_id, variant_id, sku, quantity, unit_price"
        " FROM order_lines WHERE connector_id = %s",
    }
    return {name: set(conn.execute(q, (cid,)).fetchall()) for name, q in queries.items()}


def expected_answers(store: Any) -> dict[str, Any]:
    with store.sandbox.client() as sandbox:
        response = sandbox.get(f"/sandbox/bigcommerce/stores/{store.store_hash}/expected")
        response.raise_for_status()
        return dict(response.json())


# --- worker processes, a served API, slow stores, clean references -----------------------

STALLED_SECONDS = 2.0


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

    def start(self, application_name: str = "athos-test-worker") -> subprocess.Popen[bytes]:
        """A worker whose database sessions carry `application_name` (pg_stat_activity)."""
        process = subprocess.Popen(
            [sys.executable, "-m", "athos_identity", "worker", "--concurrency", "1"],
            env={**self.env, "PGAPPNAME": application_name},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)  # a stopped process cannot terminate
                process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def live_workers(conn: psycopg.Connection) -> int:
    """Workers registered with procrastinate and sending heartbeats."""
    row = conn.execute(
        "SELECT count(*) FROM procrastinate_workers"
        " WHERE last_heartbeat > now() - make_interval(secs => %s)",
        (STALLED_SECONDS,),
    ).fetchone()
    return int(row[0]) if row else 0


@contextlib.contextmanager
def served_api(database_url: str) -> Iterator[str]:
    """`athos-identity serve` on a free port, as a separate process; yields its URL."""
    port = free_port()
    env = {
        **os.environ,
        "ATHOS_DATABASE_URL": database_url,
        "ATHOS_MASTER_SECRET": TEST_MASTER_SECRET,
        "ATHOS_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "athos_identity", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "the API process exited"
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


@contextlib.asynccontextmanager
async def background_worker() -> AsyncIterator[None]:
    """A real procrastinate worker on the pulls queue, in this process, while the block runs
    (so a test can watch and act on a run in progress)."""
    stop = asyncio.Event()

    async def work() -> None:
        while not stop.is_set():
            await run_jobs_until_idle()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)

    task = asyncio.create_task(work())
    try:
        yield
    finally:
        stop.set()
        await task


def slow_down(store: Any, seconds: float) -> None:
    """Every platform request of the store takes `seconds` more: a pull long enough to act
    on while it runs."""
    store.add_fault(kind="slow", rate=1.0, delay_seconds=seconds)


async def wait_for_run_where(
    client: httpx.AsyncClient,
    admin: dict,
    run_id: str,
    condition: Callable[[dict[str, Any]], bool],
    seconds: float = 60,
) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        run = dict((await client.get(f"/v1/syncs/{run_id}", headers=admin)).json())
        if condition(run):
            return run
        assert time.monotonic() < deadline, f"run never got there: {run}"
        await asyncio.sleep(0.05)


def key_translation(store: Any, source: uuid.UUID, target: uuid.UUID) -> dict[bytes, bytes]:
    """Keyed hashes are per tenant: what each of `source`'s keys of the store's e-mails and
    phones is under `target`'s key (to compare two tenants' copies of one store). Built from
    the sandbox's raw records with the service's own normalization, phones in every region
    a pull may read them in."""
    from athos_identity.identity.hashing import InvalidIdentifier, hash_email, hash_phone
    from athos_identity.identity.service import hasher_for

    data = store.sandbox.state.stores[store.store_hash].data
    emails: set[str] = set()
    phones: set[str] = set()
    for customer in data.customers.iter_by_updated():
        emails.add(customer.email or "")
        phones.update((customer.phone or "", customer.address_phone or ""))
    for order in data.orders.iter_by_updated():
        emails.add(order.email or "")
        phones.add(order.phone or "")
    hashers = hasher_for(source), hasher_for(target)
    translation: dict[bytes, bytes] = {}
    for region in {data.country, "US"}:
        for raw in emails | phones:
            with contextlib.suppress(InvalidIdentifier):
                if raw in emails:
                    keys = [hash_email(raw, hasher).key for hasher in hashers]
                    translation[keys[0]] = keys[1]
                if raw in phones:
                    keys = [hash_phone(raw, region, hasher).key for hasher in hashers]
                    translation[keys[0]] = keys[1]
    return translation


def translated(copy: dict[str, set[tuple]], translation: dict) -> dict[str, set[tuple]]:
    """A snapshot() with every key replaced through `translation` (KeyError: unknown key)."""

    def key(value: Any) -> Any:
        return None if value is None else translation[bytes(value)]

    return {
        "links": {(kind, key(k), version, c) for kind, k, version, c in copy["links"]},
        "customers": set(copy["customers"]),
        "orders": {
            (order, customer, key(email), key(phone), *rest)
            for order, customer, email, phone, *rest in copy["orders"]
        },
        "lines": set(copy["lines"]),
    }
