"""Helpers of the pull tests: a granted BigCommerce connector, a worker, snapshots."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import psycopg

from athos_identity.jobs import open_jobs
from athos_identity.sync.tasks import PULLS_QUEUE


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
