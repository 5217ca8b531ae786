"""Rate-limit benchmark (issue 7): how close pulls get to what a platform's limits allow.

BigCommerce Standard (150 requests per 30 s window, shared by every app of the store):
the same store is pulled twice in this run, in-process through the sync engine:
  1. on an unlimited plan: T_free, and R, the HTTP requests a full sync needs;
  2. on the Standard plan, with the sandbox clock slowed or sped up (time factor F) so
     that the quota, not our processing, is what limits the pull: T_limited.
The floor is the larger of T_free and the least time the quota allows for R requests,
(ceil(R / 150) - 1) windows of 30 / F real seconds. Figures: T_limited / floor (target
<= 1.15) and the share of responses that were 429 (target <= 1%).

    .venv/bin/python bench/ratelimited.py [--customers 30000] [--orders 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import free_port, fresh_database, report, spawn

from athos_identity import db
from athos_identity.app import create_app
from athos_identity.settings import get_settings
from athos_identity.sync import engine
from athos_identity.tenants import service as tenants

QUOTA, WINDOW = 150, 30.0
SCOPES = ["store_v2_customers_read_only", "store_v2_orders_read_only"]
statuses: Counter[int] = Counter()


def count_responses() -> None:
    """Count every response the platform clients receive (this process only)."""
    original = httpx.AsyncClient.send

    async def send(self: httpx.AsyncClient, request: httpx.Request, **kwargs: object):
        response = await original(self, request, **kwargs)  # type: ignore[arg-type]
        if "/bigcommerce/stores/" in str(request.url):
            statuses[response.status_code] += 1
        return response

    httpx.AsyncClient.send = send  # type: ignore[method-assign]


def sandbox_store(sandbox: str, store: str, plan: str, args: argparse.Namespace) -> str:
    httpx.post(
        f"{sandbox}/sandbox/bigcommerce/stores",
        json={
            "store_hash": store, "customers": args.customers, "orders": args.orders,
            "plan": plan, "seed": 3,
        },
    ).raise_for_status()  # fmt: skip
    account = httpx.post(
        f"{sandbox}/sandbox/bigcommerce/accounts", json={"store_hash": store, "scopes": SCOPES}
    )
    return str(account.json()["access_token"])


async def timed_pull(api: httpx.AsyncClient, store: str, token: str) -> tuple[float, int, int]:
    """A full sync through the engine; returns seconds, requests, 429s."""
    async with db.transaction() as session:
        tenant, _, key = await tenants.create_tenant(session, f"bench {store}", "US")
    headers = {"Authorization": f"Bearer {key}"}
    created = await api.post(
        "/v1/connectors",
        json={"platform": "bigcommerce", "name": store, "store": store},
        headers=headers,
    )
    connector_id = created.json()["id"]
    saved = await api.put(
        f"/v1/connectors/{connector_id}/bigcommerce/credentials",
        json={"store_hash": store, "access_token": token},
        headers=headers,
    )
    saved.raise_for_status()
    run = await api.post(
        f"/v1/connectors/{connector_id}/syncs", json={"mode": "full"}, headers=headers
    )
    statuses.clear()
    started = time.perf_counter()
    await engine.run_pull(tenant.tenant_id, uuid.UUID(run.json()["id"]))
    elapsed = time.perf_counter() - started
    return elapsed, sum(statuses.values()), statuses[429]


async def measure(args: argparse.Namespace, sandbox: str) -> dict:
    get_settings().bigcommerce_base_url = f"{sandbox}/bigcommerce"
    count_responses()
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as api:
        free_token = await asyncio.to_thread(sandbox_store, sandbox, "free01", "unlimited", args)
        t_free, requests, _ = await timed_pull(api, "free01", free_token)
        # Slow the clock so the quota allows about half our unthrottled request rate.
        if requests <= QUOTA:
            raise SystemExit(f"{requests} requests fit in one quota: make the store bigger")
        windows = math.ceil(requests / QUOTA) - 1
        factor = windows * WINDOW / (2 * t_free)
        async with httpx.AsyncClient() as plain:  # the sandbox's admin API, over HTTP
            clock = await plain.post(f"{sandbox}/sandbox/clock", json={"time_factor": factor})
            clock.raise_for_status()
        limited_token = await asyncio.to_thread(sandbox_store, sandbox, "std01", "standard", args)
        t_limited, limited_requests, throttled = await timed_pull(api, "std01", limited_token)
    floor = max(t_free, windows * WINDOW / factor)
    return {
        "bench": "ratelimited",
        "platform": "bigcommerce",
        "customers": args.customers,
        "orders": args.orders,
        "requests": limited_requests,
        "time_factor": round(factor, 3),
        "unthrottled_seconds": round(t_free, 1),
        "quota_floor_seconds": round(windows * WINDOW / factor, 1),
        "limited_seconds": round(t_limited, 1),
        "time_ratio": round(t_limited / floor, 3),
        "share_429": round(throttled / max(1, limited_requests), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=30_000)
    parser.add_argument("--orders", type=int, default=10_000)
    args = parser.parse_args()
    port = free_port()
    sandbox_url = f"http://127.0.0.1:{port}"
    sandbox = spawn(["sandbox", "--port", str(port), "--customers", "10", "--orders", "10"], {})
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{sandbox_url}/sandbox/state", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        with fresh_database():
            figures = asyncio.run(measure(args, sandbox_url))
    finally:
        sandbox.terminate()
        sandbox.wait(10)
    report(figures)


if __name__ == "__main__":
    main()
