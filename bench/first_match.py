"""First-match benchmark (issue 7): from Shopify's OAuth callback to customers findable by e-mail.

A sandbox Shopify shop (a subprocess) with N customers on the Standard ("basic") plan's
limits, in real time (time factor 1). The API (`athos-identity serve`) and one worker
(`athos-identity worker`) run as subprocesses on a fresh database. The merchant's browser
steps are real HTTP: Grant Access, the approval page, Install, and the redirect to the
service's callback. The clock starts just before the browser lands on the callback; the
console then starts the first full sync (POST /v1/connectors/{id}/syncs), as it does today.

Measured:
  first_match_s  until a look-up batch (the e-mails of the 500 lowest customer ids and 500
                 random ones, raw, POST /v1/identity/lookup, every 0.1 s) finds a customer;
  all_s          until the run has written every customer of the shop;
then every known e-mail is looked up once to check the links (not timed).

    .venv/bin/python bench/first_match.py [--customers 100000] [--orders 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import MASTER_SECRET, approve_shopify_install, free_port, fresh_database, report, spawn

from athos_identity import db
from athos_identity.tenants import service as tenants

SHOP = "demo-shop.myshopify.com"
SEED = 5
BATCH = 1_000
POLL_SECONDS = 0.1


LOGS = tempfile.mkdtemp(prefix="athos-first-match-")


def spawn_logged(name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Like common.spawn, with the output kept in a log file (shown when something fails)."""
    log = open(os.path.join(LOGS, f"{name}.log"), "wb")  # noqa: SIM115 - lives with the process
    return subprocess.Popen(
        [sys.executable, "-m", "athos_identity", *args],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_ready(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} never answered")


async def create_tenant() -> str:
    async with db.transaction() as session:
        _, _, admin_key = await tenants.create_tenant(session, "first-match bench", "US")
    await db.dispose_engine()
    return str(admin_key)


def found_count(api: httpx.Client, emails: list[str]) -> int:
    body = {"identifiers": [{"type": "email", "value": e} for e in emails]}
    response = api.post("/v1/identity/lookup", json=body)
    response.raise_for_status()
    return sum(1 for r in response.json()["results"] if r["matched"])


def check_all(api: httpx.Client, by_email: dict[str, list[int]]) -> int:
    """Look every known e-mail up; returns how many answered other ids than expected."""
    wrong = 0
    emails = sorted(by_email)
    for start in range(0, len(emails), BATCH):
        chunk = emails[start : start + BATCH]
        body = {"identifiers": [{"type": "email", "value": e} for e in chunk]}
        response = api.post("/v1/identity/lookup", json=body)
        response.raise_for_status()
        for email, result in zip(chunk, response.json()["results"], strict=True):
            ids = {c["customer_id"] for c in result["customers"]}
            wrong += ids != {str(i) for i in by_email[email]}
    return wrong


def measure(args: argparse.Namespace, database_url: str, sandbox: str) -> dict[str, object]:
    state = httpx.get(f"{sandbox}/sandbox/state", timeout=10).json()
    print("computing the known answers ...", file=sys.stderr)
    expected = httpx.get(f"{sandbox}/sandbox/shopify/shops/{SHOP}/expected", timeout=300).json()
    by_email: dict[str, list[int]] = expected["customers_by_email"]
    lowest = sorted(by_email, key=lambda e: min(by_email[e]))[: BATCH // 2]
    probe = lowest + random.Random(SEED).sample(sorted(by_email), BATCH // 2)

    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    env = {
        "ATHOS_DATABASE_URL": db.as_psycopg_url(database_url),
        "ATHOS_MASTER_SECRET": MASTER_SECRET,
        "ATHOS_PUBLIC_URL": api_url,
        "ATHOS_LOG_LEVEL": "WARNING",
        **state["settings"],
    }
    admin_key = asyncio.run(create_tenant())
    server = spawn_logged("api", ["serve", "--port", str(api_port), "--workers", "1"], env)
    worker = spawn_logged("worker", ["worker", "--concurrency", "1"], env)
    try:
        wait_ready(f"{api_url}/readyz")
        headers = {"Authorization": f"Bearer {admin_key}"}
        with httpx.Client(base_url=api_url, headers=headers, timeout=60) as api:
            created = api.post(
                "/v1/connectors", json={"platform": "shopify", "name": "Shop", "store": SHOP}
            )
            assert created.status_code == 201, created.text
            connector_id = created.json()["id"]
            authorize_url = api.post(f"/v1/connectors/{connector_id}/shopify/grant").json()[
                "authorize_url"
            ]
            callback = urlsplit(approve_shopify_install(sandbox, authorize_url))

            started = time.perf_counter()
            landed = api.get(f"{callback.path}?{callback.query}")
            assert landed.status_code == 303, landed.text
            callback_s = time.perf_counter() - started
            sync = api.post(f"/v1/connectors/{connector_id}/syncs", json={"mode": "full"})
            assert sync.status_code == 202, sync.text
            run_id = sync.json()["id"]

            first_s = all_s = None
            run: dict = {}
            deadline = started + args.timeout
            while all_s is None and time.perf_counter() < deadline:
                if first_s is None and found_count(api, probe):
                    first_s = time.perf_counter() - started
                run = api.get(f"/v1/syncs/{run_id}").json()
                if run["customers"] >= expected["customer_count"]:
                    all_s = time.perf_counter() - started
                    first_s = first_s or all_s
                elif run["status"] not in ("queued", "running"):
                    raise RuntimeError(f"the sync ended early: {run}")
                else:
                    time.sleep(POLL_SECONDS)
            wrong = check_all(api, by_email) if all_s is not None else None
            while run.get("status") in ("queued", "running"):  # the orders, for the record
                time.sleep(1)
                run = api.get(f"/v1/syncs/{run_id}").json()
    finally:
        for process in (worker, server):
            process.terminate()
            process.wait(20)
    return {
        "bench": "first_match",
        "platform": "shopify",
        "plan": args.plan,
        "customers": expected["customer_count"],
        "orders": run.get("orders"),
        "callback_s": round(callback_s, 2),
        "first_match_s": round(first_s, 2) if first_s is not None else None,
        "all_s": round(all_s, 2) if all_s is not None else None,
        "emails_checked": len(by_email),
        "emails_wrong": wrong,
        "run_status": run.get("status"),
        "run_pages": run.get("pages"),
        "skipped_identifiers": run.get("skipped"),
        "targets": {"first_match_s": 10, "all_s": 60},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=1_000)
    parser.add_argument("--plan", default="basic", help="sandbox plan (basic = Standard)")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    port = free_port()
    sandbox_url = f"http://127.0.0.1:{port}"
    sandbox = spawn(
        [
            "sandbox", "--port", str(port), "--customers", str(args.customers),
            "--orders", str(args.orders), "--plan", args.plan, "--seed", str(SEED),
            "--time-factor", "1",
        ],
        {},
    )  # fmt: skip
    try:
        wait_ready(f"{sandbox_url}/sandbox/state")
        with fresh_database() as url:
            figures = measure(args, url, sandbox_url)
    except Exception:
        print(f"failed; the processes' logs are in {LOGS}", file=sys.stderr)
        raise
    finally:
        sandbox.terminate()
        sandbox.wait(10)
    report(figures)


if __name__ == "__main__":
    main()
