"""Rate-limit benchmark (issue 7): how close pulls get to what a platform's limits allow.

BigCommerce Standard (150 requests per 30 s window, shared by every app of the store):
the same store is pulled twice in this run, in-process through the sync engine:
  1. on an unlimited plan: T_free, and R, the HTTP requests a full sync needs;
  2. on the Standard plan, with the sandbox clock slowed or sped up (time factor F) so
     that the quota, not our processing, is what limits the pull: T_limited.
The floor is the larger of T_free and the least time the quota allows for R requests,
(ceil(R / 150) - 1) windows of 30 / F real seconds. Figures: T_limited / floor (target
<= 1.15) and the share of responses that were 429 (target <= 1%).

Shopify Standard ("basic" in the sandbox: cost bucket 2000 points, restoring 100 per
second), an incremental sync through the paged GraphQL connections (the cost-limited path;
full syncs use bulk exports, which cost next to nothing). Each shop is granted through the
real OAuth flow, its cursors set before every record, so the incremental run reads the
whole shop page by page. The same shop contents are pulled twice:
  1. on the "unlimited" plan: T_free, and C, the actual cost the pull spent (the sum of
     `extensions.cost.actualQueryCost` over every response);
  2. on "basic", with the sandbox clock sped up (time factor F, chosen so the bucket allows
     about half our unthrottled rate): T_limited.
Floor = max(T_free, (C - 2000) / (100 x F)): the bucket starts full, then refills at
100 x F points per real second. Figures: T_limited / floor and the share of responses that
were THROTTLED or 429 (target <= 1%).

Measured on the 2-core machine (defaults, 227 s in all): BigCommerce 292 requests, ratio
0.999, 0 x 429; Shopify 6000 customers + 1500 orders, 381 requests, 78362 points, F 24.3,
T_free 16.1 s, bucket floor 31.4 s, T_limited 31.9 s: ratio 1.016, 2 THROTTLED (0.5%).

    .venv/bin/python bench/ratelimited.py [--customers 30000] [--orders 10000]
        [--shop-customers 6000] [--shop-orders 1500] [--platforms bigcommerce,shopify]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import approve_shopify_install, free_port, fresh_database, report, spawn

from athos_identity import db
from athos_identity.app import create_app
from athos_identity.settings import get_settings
from athos_identity.sync import engine
from athos_identity.sync import repository as sync_repository
from athos_identity.sync.sources import Stream
from athos_identity.tenants import service as tenants

QUOTA, WINDOW = 150, 30.0
SCOPES = ["store_v2_customers_read_only", "store_v2_orders_read_only"]
statuses: Counter[int] = Counter()
shopify: Counter[str] = Counter()  # responses, throttled, 429, cost (actual points)
SHOPIFY_BUCKET, SHOPIFY_RESTORE = 2000.0, 100.0  # Standard ("basic")
FAR_PAST = datetime(2000, 1, 1, tzinfo=UTC)


def count_responses() -> None:
    """Count every response the platform clients receive (this process only): BigCommerce
    statuses; Shopify GraphQL responses, THROTTLED errors, 429s and actual query cost."""
    original = httpx.AsyncClient.send

    async def send(self: httpx.AsyncClient, request: httpx.Request, **kwargs: object):
        response = await original(self, request, **kwargs)  # type: ignore[arg-type]
        url = str(request.url)
        if "/bigcommerce/stores/" in url:
            statuses[response.status_code] += 1
        elif "/shopify/" in url and url.endswith("/graphql.json") and not kwargs.get("stream"):
            count_shopify(response)
        return response

    httpx.AsyncClient.send = send  # type: ignore[method-assign]


def count_shopify(response: httpx.Response) -> None:
    shopify["responses"] += 1
    if response.status_code == 429:
        shopify["429"] += 1
        return
    try:
        body = json.loads(response.content)
    except ValueError:
        return
    if not isinstance(body, dict):
        return
    errors = body.get("errors")
    if isinstance(errors, list) and any(
        isinstance(e, dict) and (e.get("extensions") or {}).get("code") == "THROTTLED"
        for e in errors
    ):
        shopify["throttled"] += 1
    cost = (body.get("extensions") or {}).get("cost") or {}
    actual = cost.get("actualQueryCost")
    if isinstance(actual, int | float):
        shopify["cost"] += int(actual)


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


async def measure_bigcommerce(args: argparse.Namespace, sandbox: str) -> dict:
    get_settings().bigcommerce_base_url = f"{sandbox}/bigcommerce"
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
        "plan": "standard",
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


# --- Shopify --------------------------------------------------------------------------------


def sandbox_shop(sandbox: str, shop: str, plan: str, args: argparse.Namespace) -> None:
    httpx.post(
        f"{sandbox}/sandbox/shopify/shops",
        json={
            "shop": shop, "customers": args.shop_customers, "orders": args.shop_orders,
            "plan": plan, "seed": 3,
        },
        timeout=120,
    ).raise_for_status()  # fmt: skip


async def timed_incremental(api: httpx.AsyncClient, sandbox: str, shop: str) -> dict:
    """Grant Access, cursors before every record, an incremental sync through the engine;
    returns its seconds and what the bench counted of Shopify's responses."""
    async with db.transaction() as session:
        tenant, _, key = await tenants.create_tenant(session, f"bench {shop}", "US")
    headers = {"Authorization": f"Bearer {key}"}
    created = await api.post(
        "/v1/connectors",
        json={"platform": "shopify", "name": shop, "store": shop},
        headers=headers,
    )
    created.raise_for_status()
    connector_id = created.json()["id"]
    grant = await api.post(
        f"/v1/connectors/{connector_id}/shopify/grant",
        json={"history_days": 3650},  # read_all_orders: every order is visible
        headers=headers,
    )
    grant.raise_for_status()
    callback = urlsplit(
        await asyncio.to_thread(approve_shopify_install, sandbox, grant.json()["authorize_url"])
    )
    landed = await api.get(f"{callback.path}?{callback.query}")
    assert landed.status_code == 303, landed.text
    async with db.tenant_transaction(tenant.tenant_id) as session:
        for stream in Stream:
            await sync_repository.advance_cursor(
                session, tenant.tenant_id, uuid.UUID(connector_id), stream, FAR_PAST
            )
    run = await api.post(
        f"/v1/connectors/{connector_id}/syncs", json={"mode": "incremental"}, headers=headers
    )
    run.raise_for_status()
    shopify.clear()
    started = time.perf_counter()
    await engine.run_pull(tenant.tenant_id, uuid.UUID(run.json()["id"]))
    elapsed = time.perf_counter() - started
    counted = dict(shopify)
    done = await api.get(f"/v1/syncs/{run.json()['id']}", headers=headers)
    body = done.json()
    if body["status"] != "succeeded":
        raise SystemExit(f"the incremental sync of {shop} ended {body['status']}: {body}")
    return {"seconds": elapsed, "customers": body["customers"], "orders": body["orders"], **counted}


async def measure_shopify(args: argparse.Namespace, sandbox: str) -> dict:
    async with httpx.AsyncClient(timeout=10) as plain:
        state = (await plain.get(f"{sandbox}/sandbox/state")).json()["settings"]
    settings = get_settings()
    settings.shopify_base_url = state["ATHOS_SHOPIFY_BASE_URL"]
    settings.shopify_client_id = state["ATHOS_SHOPIFY_CLIENT_ID"]
    settings.shopify_client_secret = SecretStr(state["ATHOS_SHOPIFY_CLIENT_SECRET"])
    settings.public_url = "http://bench.invalid"
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as api:
        async with httpx.AsyncClient() as plain:  # real time for the unthrottled pull
            (
                await plain.post(f"{sandbox}/sandbox/clock", json={"time_factor": 1.0})
            ).raise_for_status()
        await asyncio.to_thread(
            sandbox_shop, sandbox, "free-bench.myshopify.com", "unlimited", args
        )
        free = await timed_incremental(api, sandbox, "free-bench.myshopify.com")
        cost = free.get("cost", 0)
        if cost <= 2 * SHOPIFY_BUCKET:
            raise SystemExit(f"the pull cost {cost} points: make the shop bigger")
        # Speed the clock up so the bucket allows about half our unthrottled rate.
        factor = (cost - SHOPIFY_BUCKET) / (SHOPIFY_RESTORE * 2 * free["seconds"])
        async with httpx.AsyncClient() as plain:
            (
                await plain.post(f"{sandbox}/sandbox/clock", json={"time_factor": factor})
            ).raise_for_status()
        await asyncio.to_thread(sandbox_shop, sandbox, "std-bench.myshopify.com", "basic", args)
        limited = await timed_incremental(api, sandbox, "std-bench.myshopify.com")
    bucket_floor = (limited.get("cost", 0) - SHOPIFY_BUCKET) / (SHOPIFY_RESTORE * factor)
    floor = max(free["seconds"], bucket_floor)
    refused = limited.get("throttled", 0) + limited.get("429", 0)
    return {
        "plan": "basic",
        "customers": limited["customers"],
        "orders": limited["orders"],
        "requests": limited.get("responses", 0),
        "actual_cost": limited.get("cost", 0),
        "time_factor": round(factor, 3),
        "unthrottled_seconds": round(free["seconds"], 1),
        "bucket_floor_seconds": round(bucket_floor, 1),
        "limited_seconds": round(limited["seconds"], 1),
        "time_ratio": round(limited["seconds"] / floor, 3),
        "throttled": limited.get("throttled", 0),
        "responses_429": limited.get("429", 0),
        "share_throttled": round(refused / max(1, limited.get("responses", 0)), 4),
    }


async def measure(args: argparse.Namespace, sandbox: str) -> dict:
    count_responses()
    figures: dict = {"bench": "ratelimited"}
    if "bigcommerce" in args.platforms:
        figures["bigcommerce"] = await measure_bigcommerce(args, sandbox)
    if "shopify" in args.platforms:
        figures["shopify"] = await measure_shopify(args, sandbox)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=30_000)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--shop-customers", type=int, default=6_000)
    parser.add_argument("--shop-orders", type=int, default=1_500)
    parser.add_argument("--platforms", default="bigcommerce,shopify")
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
