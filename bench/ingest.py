"""Ingest benchmark (issue 7): a full BigCommerce sync through the real worker, against a floor.

A sandbox store (unlimited plan: no rate limit) with N customers and N orders is pulled by
`athos-identity worker` (a subprocess) from the sandbox (a subprocess), over real HTTP. In
the same run, the floor: the same records generated in-process, normalized, hashed and
written with the same COPY-based repository functions, page by page, without HTTP or jobs.

    .venv/bin/python bench/ingest.py [--customers 200000] [--orders 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import MASTER_SECRET, free_port, fresh_database, report, spawn

from athos_identity import db
from athos_identity.app import create_app
from athos_identity.identity import repository as identity
from athos_identity.identity.records import CustomerRecord, hash_customer
from athos_identity.identity.service import hasher_for
from athos_identity.sales import repository as sales
from athos_identity.sales.records import OrderLine, OrderRecord, hash_order
from athos_identity.sandbox.data import GeneratorSpec, StoreData
from athos_identity.settings import get_settings
from athos_identity.tenants import service as tenants

PAGE = 250
STORE = "bench01"
SEED = 5


async def setup_connector(api: httpx.AsyncClient, token: str) -> tuple[uuid.UUID, str, str]:
    async with db.transaction() as session:
        tenant, _, admin_key = await tenants.create_tenant(session, "ingest bench", "US")
    headers = {"Authorization": f"Bearer {admin_key}"}
    created = await api.post(
        "/v1/connectors",
        json={"platform": "bigcommerce", "name": "bench", "store": STORE},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    connector_id = created.json()["id"]
    saved = await api.put(
        f"/v1/connectors/{connector_id}/bigcommerce/credentials",
        json={"store_hash": STORE, "access_token": token},
        headers=headers,
    )
    saved.raise_for_status()
    return tenant.tenant_id, admin_key, connector_id


async def pull(api: httpx.AsyncClient, admin_key: str, connector_id: str, env: dict) -> dict:
    headers = {"Authorization": f"Bearer {admin_key}"}
    response = await api.post(
        f"/v1/connectors/{connector_id}/syncs", json={"mode": "full"}, headers=headers
    )
    run_id = response.json()["id"]
    worker = spawn(["worker", "--concurrency", "1"], env)
    try:
        while True:
            run = (await api.get(f"/v1/syncs/{run_id}", headers=headers)).json()
            if run["status"] not in ("queued", "running"):
                break
            await asyncio.sleep(1)
    finally:
        worker.terminate()
        worker.wait(20)
    assert run["status"] == "succeeded", run
    return dict(run)


def floor_records(customers: int, orders: int) -> StoreData:
    return StoreData(
        GeneratorSpec(
            seed=SEED, name=STORE, country="US", customers=customers, orders=orders,
            anchor=int(time.time()), order_id_offset=100_000_000,
        )
    )  # fmt: skip


async def floor_rate(tenant_id: uuid.UUID, customers: int, orders: int) -> float:
    """Generate, normalize, hash and COPY the same volume in-process: no HTTP, no jobs."""
    data = floor_records(customers, orders)
    hasher = hasher_for(tenant_id)
    async with db.tenant_transaction(tenant_id) as session:
        connector_id = await identity.api_connector_id(session, tenant_id)
    started = time.perf_counter()
    page: list = []
    for customer in data.customers.iter_by_updated():
        page.append(
            hash_customer(
                CustomerRecord(
                    str(customer.id),
                    tuple(e for e in [customer.email] if e),
                    tuple(p for p in [customer.phone, customer.address_phone] if p),
                    "US",
                ),
                hasher,
            )
        )
        if len(page) == PAGE:
            await _write_customers(tenant_id, connector_id, page)
            page = []
    await _write_customers(tenant_id, connector_id, page)
    batch: list = []
    for order in data.orders.iter_by_updated():
        lines = tuple(
            OrderLine(
                str(line.id), line.quantity, str(line.product_id), str(line.variant_id),
                line.sku, Decimal(line.unit_price_cents) / 100,
            )
            for line in order.lines
        )  # fmt: skip
        record = OrderRecord(
            str(order.id), str(order.customer_id) if order.customer_id else None,
            order.email, order.phone, "US", order.currency, None, order.financial_status,
            None, None, lines,
        )  # fmt: skip
        batch.append(hash_order(record, hasher))
        if len(batch) == PAGE:
            await _write_orders(tenant_id, connector_id, batch)
            batch = []
    await _write_orders(tenant_id, connector_id, batch)
    return (customers + orders) / (time.perf_counter() - started)


async def _write_customers(tenant_id: uuid.UUID, connector_id: uuid.UUID, page: list) -> None:
    async with db.tenant_transaction(tenant_id) as session:
        await identity.replace_customer_links(session, tenant_id, connector_id, page)
        await identity.mark_customers_seen(
            session, tenant_id, connector_id, [c.customer_id for c in page], None
        )


async def _write_orders(tenant_id: uuid.UUID, connector_id: uuid.UUID, batch: list) -> None:
    async with db.tenant_transaction(tenant_id) as session:
        await sales.upsert_orders(session, tenant_id, connector_id, batch)


async def measure(args: argparse.Namespace, url: str, sandbox: str, token: str) -> dict:
    env = {
        "ATHOS_DATABASE_URL": db.as_psycopg_url(url),
        "ATHOS_MASTER_SECRET": MASTER_SECRET,
        "ATHOS_BIGCOMMERCE_BASE_URL": f"{sandbox}/bigcommerce",
        "ATHOS_LOG_LEVEL": "WARNING",
    }
    settings = get_settings()
    settings.bigcommerce_base_url = env["ATHOS_BIGCOMMERCE_BASE_URL"]
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as api:
        tenant_id, admin_key, connector_id = await setup_connector(api, token)
        run = await pull(api, admin_key, connector_id, env)
    elapsed = (_parse(run["finished_at"]) - _parse(run["started_at"])).total_seconds()
    records = run["customers"] + run["orders"]
    floor = await floor_rate(tenant_id, args.customers, args.orders)
    rate = records / elapsed
    return {
        "bench": "ingest",
        "customers": run["customers"],
        "orders": run["orders"],
        "worker_records_per_s": round(rate),
        "floor_records_per_s": round(floor),
        "ratio": round(rate / floor, 3),
        "list_requests_per_1000_records": round(run["pages"] * 1000 / records, 2),
        "skipped_identifiers": run["skipped"],
        "sync_seconds": round(elapsed, 1),
    }


def _parse(value: str):
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--orders", type=int, default=200_000)
    args = parser.parse_args()
    port = free_port()
    sandbox_url = f"http://127.0.0.1:{port}"
    sandbox = spawn(
        [
            "sandbox", "--port", str(port), "--customers", "10", "--orders", "10",
            "--plan", "unlimited", "--seed", str(SEED),
        ],
        {},
    )  # fmt: skip
    try:
        wait_ready(f"{sandbox_url}/sandbox/state")
        httpx.post(
            f"{sandbox_url}/sandbox/bigcommerce/stores",
            json={
                "store_hash": STORE, "customers": args.customers, "orders": args.orders,
                "plan": "unlimited", "seed": SEED,
            },
        ).raise_for_status()  # fmt: skip
        token = httpx.post(
            f"{sandbox_url}/sandbox/bigcommerce/accounts",
            json={
                "store_hash": STORE,
                "scopes": ["store_v2_customers_read_only", "store_v2_orders_read_only"],
            },
        ).json()["access_token"]
        with fresh_database() as url:
            figures = asyncio.run(measure(args, url, sandbox_url, token))
    finally:
        sandbox.terminate()
        sandbox.wait(10)
    report(figures)


def wait_ready(url: str) -> None:
    for _ in range(200):
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} never answered")


if __name__ == "__main__":
    main()
