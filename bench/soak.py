"""Soak (issue 9): steady single look-ups while a large BigCommerce sync runs and webhooks arrive.

Subprocesses, as operators run them: the sandbox (one store on the unlimited plan), the API
(`athos-identity serve`, its public URL = where the sandbox sends hooks) and one worker.
100,000 identities are loaded for the look-ups; then, for --seconds:
  - single-identifier look-ups at a fixed offered rate (open loop, KeepAliveConnection);
  - a full pull of the store by the worker;
  - a customer change in the store every --hook-interval seconds, which the sandbox
    delivers to the API as a webhook (recorded, then applied by a job);
  - pg_stat_activity sampled every half second.
Reports achieved rate, p50/p99, errors (target 0), the largest number of database
connections seen, and how far the sync and the hooks got; one JSON line at the end.

    .venv/bin/python bench/soak.py [--seconds 180] [--rate 200] [--customers 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    MASTER_SECRET,
    KeepAliveConnection,
    free_port,
    fresh_database,
    percentile,
    report,
    spawn,
)
from lookup import email, load

from athos_identity import db
from athos_identity.tenants import service as tenants
from athos_identity.tenants.schemas import Scope

STORE = "soak01"
SEED = 11
POPULATION = 100_000
CONNECTIONS = 32  # open loop: enough connections that latency does not cap the rate


def wait_ready(url: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} never answered")


async def prepare_tenant() -> tuple[uuid.UUID, str, str]:
    async with db.transaction() as session:
        tenant, _, admin_key = await tenants.create_tenant(session, "soak", "US")
    async with db.tenant_transaction(tenant.tenant_id) as session:
        _, lookup_key = await tenants.create_key(session, tenant.tenant_id, [Scope.lookup])
    await load(tenant.tenant_id, 0, POPULATION)
    await db.dispose_engine()
    return tenant.tenant_id, admin_key, lookup_key


async def lookups(base: str, token: str, rate: float, until: float) -> dict[str, float]:
    host, port = base.removeprefix("http://").split(":")
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    errors = 0
    statuses: dict[int, int] = {}

    async def one(seed: int) -> None:
        nonlocal errors
        rng = random.Random(seed)
        connection = KeepAliveConnection(host, int(port), headers)
        interval = CONNECTIONS / rate
        next_send = time.perf_counter() + rng.random() * interval
        try:
            while (now := time.perf_counter()) < until:
                if next_send > now:
                    await asyncio.sleep(next_send - now)
                now, next_send = time.perf_counter(), next_send + interval
                identifier = {"type": "email", "value": email(0, rng.randrange(POPULATION))}
                body = json.dumps({"identifiers": [identifier]}).encode()
                try:
                    status, _ = await connection.post_json("/v1/identity/lookup", body)
                except (OSError, asyncio.IncompleteReadError):
                    status = 0
                    await connection.close()
                    connection = KeepAliveConnection(host, int(port), headers)
                latencies.append(time.perf_counter() - now)
                statuses[status] = statuses.get(status, 0) + 1
                errors += status != 200
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(one(s) for s in range(CONNECTIONS)))
    elapsed = time.perf_counter() - started
    return {
        "lookups": len(latencies),
        "achieved_rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 2),
        "errors": errors,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


async def hooks(sandbox: str, customers: int, interval: float, until: float) -> int:
    sent = 0
    rng = random.Random(SEED)
    async with httpx.AsyncClient(base_url=sandbox, timeout=10) as client:
        while time.perf_counter() < until:
            customer = rng.randrange(1, customers + 1)
            response = await client.patch(
                f"/sandbox/bigcommerce/stores/{STORE}/customers/{customer}",
                json={"first_name": f"Soak{sent}"},
            )
            sent += response.status_code < 300
            await asyncio.sleep(interval)
    return sent


async def connections(url: str, database: str, until: float) -> dict[str, int]:
    most = {"max_db_connections": 0, "max_db_connections_active": 0}
    query = (
        "SELECT count(*), count(*) FILTER (WHERE state = 'active')"
        " FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
    )
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        while time.perf_counter() < until:
            cursor = await conn.execute(query, (database,))
            total, active = await cursor.fetchone() or (0, 0)
            most["max_db_connections"] = max(most["max_db_connections"], total)
            most["max_db_connections_active"] = max(most["max_db_connections_active"], active)
            await asyncio.sleep(0.5)
    return most


async def soak(args: argparse.Namespace, url: str, sandbox: str, token: str) -> dict[str, object]:
    tenant_id, admin_key, lookup_key = await prepare_tenant()
    api_port = free_port()
    base = f"http://127.0.0.1:{api_port}"
    env = {
        "ATHOS_DATABASE_URL": db.as_psycopg_url(url),
        "ATHOS_MASTER_SECRET": MASTER_SECRET,
        "ATHOS_BIGCOMMERCE_BASE_URL": f"{sandbox}/bigcommerce",
        "ATHOS_PUBLIC_URL": base,
        "ATHOS_LOG_LEVEL": "WARNING",
    }
    api = spawn(["serve", "--port", str(api_port), "--workers", str(args.workers)], env)
    worker: subprocess.Popen[bytes] | None = None
    admin = {"Authorization": f"Bearer {admin_key}"}
    try:
        wait_ready(f"{base}/readyz")
        async with httpx.AsyncClient(base_url=base, headers=admin, timeout=60) as client:
            created = await client.post(
                "/v1/connectors", json={"platform": "bigcommerce", "name": "soak", "store": STORE}
            )
            connector_id = created.json()["id"]
            saved = await client.put(
                f"/v1/connectors/{connector_id}/bigcommerce/credentials",
                json={"store_hash": STORE, "access_token": token},
            )
            saved.raise_for_status()
            run_id = (
                await client.post(f"/v1/connectors/{connector_id}/syncs", json={"mode": "full"})
            ).json()["id"]
            worker = spawn(["worker", "--concurrency", "2"], env)
            await asyncio.sleep(3)  # the worker starts and the pull gets going
            until = time.perf_counter() + args.seconds
            database = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
            looked, sent, most = await asyncio.gather(
                lookups(base, lookup_key, args.rate, until),
                hooks(sandbox, args.customers, args.hook_interval, until),
                connections(url, str(database), until),
            )
            run = (await client.get(f"/v1/syncs/{run_id}")).json()
        with psycopg.connect(url) as conn:
            received = conn.execute("SELECT count(*) FROM webhook_deliveries").fetchone()
            applied = conn.execute(
                "SELECT count(*) FROM webhook_deliveries WHERE processed_at IS NOT NULL"
            ).fetchone()
    finally:
        for process in (worker, api):
            if process is not None:
                process.terminate()
                try:  # a worker finishes its running job first: the pull may be long
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
    return {
        "bench": "soak",
        "seconds": args.seconds,
        "offered_rps": args.rate,
        **looked,
        **most,
        "sync_status": run["status"],
        "sync_records_during_run": run["customers"] + run["orders"],
        "sync_pages": run["pages"],
        "hooks_sent": sent,
        "hooks_received": received[0] if received else 0,
        "hooks_applied": applied[0] if applied else 0,
        "api_workers": args.workers,
        "tenant": str(tenant_id)[:8],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--rate", type=float, default=200.0, help="offered look-ups per second")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--hook-interval", type=float, default=0.5)
    parser.add_argument("--workers", type=int, default=1, help="API worker processes")
    args = parser.parse_args()
    port = free_port()
    sandbox_url = f"http://127.0.0.1:{port}"
    sandbox = spawn(
        ["sandbox", "--port", str(port), "--customers", "10", "--orders", "10",
         "--plan", "unlimited", "--seed", str(SEED)],
        {},
    )  # fmt: skip
    try:
        wait_ready(f"{sandbox_url}/sandbox/state")
        print(f"generating a store of {args.customers:,} customers ...", file=sys.stderr)
        httpx.post(
            f"{sandbox_url}/sandbox/bigcommerce/stores",
            json={"store_hash": STORE, "customers": args.customers, "orders": args.orders,
                  "plan": "unlimited", "seed": SEED},
            timeout=600,
        ).raise_for_status()  # fmt: skip
        token = httpx.post(
            f"{sandbox_url}/sandbox/bigcommerce/accounts",
            json={
                "store_hash": STORE,
                "scopes": ["store_v2_customers_read_only", "store_v2_orders_read_only"],
            },
            timeout=30,
        ).json()["access_token"]
        with fresh_database() as url:
            print(f"loading {POPULATION:,} identities ...", file=sys.stderr)
            figures = asyncio.run(soak(args, url, sandbox_url, token))
    finally:
        sandbox.terminate()
        sandbox.wait(10)
    report(figures)


if __name__ == "__main__":
    main()
