"""`athos-identity dev` (what `make run` starts): everything a newcomer needs, locally.

The embedded Postgres (migrated), the platform sandbox, the API and a worker, plus a demo
tenant with a Shopify and a BigCommerce connector pointing at the sandbox. The demo's admin
key is kept in the data directory (mode 0600) so that every start can print it again.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from athos_identity.db import database_in_use, migrate, tenant_transaction, transaction
from athos_identity.settings import get_settings
from athos_identity.tenants import service as tenants
from athos_identity.tenants.schemas import Scope

DEMO_FILE = "demo.json"


def _wait_for(url: str, seconds: float = 60) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer in {seconds:.0f} s")
        time.sleep(0.3)


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "athos_identity", *args], env=env)  # noqa: S603


async def _create_demo_tenant() -> dict[str, str]:
    async with transaction() as session:
        tenant, _, admin_key = await tenants.create_tenant(session, "Demo store", "US")
    async with tenant_transaction(tenant.tenant_id) as session:
        _, lookup_key = await tenants.create_key(
            session, tenant.tenant_id, [Scope.lookup], "demo messaging service"
        )
    return {"tenant_id": str(tenant.tenant_id), "admin_key": admin_key, "lookup_key": lookup_key}


def _demo(data_dir: Path) -> dict[str, Any]:
    path = data_dir / DEMO_FILE
    if path.exists():
        return dict(json.loads(path.read_text()))
    demo = asyncio.run(_create_demo_tenant())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(demo, f)
    return demo


def _ensure_connectors(api: str, admin_key: str, state: dict[str, Any]) -> None:
    headers = {"Authorization": f"Bearer {admin_key}"}
    wanted = [
        {
            "platform": "shopify",
            "name": "Demo Shopify",
            "store": state["shopify"]["shops"][0]["shop"],
        },
        {
            "platform": "bigcommerce",
            "name": "Demo BigCommerce",
            "store": state["bigcommerce"]["stores"][0]["store_hash"],
        },
    ]
    with httpx.Client(base_url=api, headers=headers, timeout=10) as client:
        existing = {(c["platform"], c["store"]) for c in client.get("/v1/connectors").json()}
        for connector in wanted:
            if (connector["platform"], connector["store"]) not in existing:
                client.post("/v1/connectors", json=connector).raise_for_status()


def _stop_on_signals() -> None:
    """Ctrl-C and a plain `kill` (SIGTERM, as `docker stop` sends) both stop the children
    too: the `finally` below runs. Set explicitly, since a shell's background job starts
    with SIGINT ignored."""

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)


def run_dev(port: int, sandbox_port: int, console: Console) -> None:
    _stop_on_signals()
    settings = get_settings()
    url, line = database_in_use()
    console.print(line, soft_wrap=True)
    migrate(url)
    settings.master_key  # noqa: B018 (creates the development master secret once, if needed)

    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    api = f"http://127.0.0.1:{port}"
    env = {**os.environ, "ATHOS_DATABASE_URL": url, "ATHOS_DATA_DIR": str(settings.data_dir)}
    processes = [_spawn(["sandbox", "--port", str(sandbox_port)], env)]
    try:
        state = _wait_for(f"{sandbox_url}/sandbox/state").json()
        env.update(state["settings"])
        env["ATHOS_PUBLIC_URL"] = api
        processes.append(_spawn(["serve", "--port", str(port)], env))
        processes.append(_spawn(["worker"], env))
        _wait_for(f"{api}/readyz")
        demo = _demo(settings.data_dir)
        _ensure_connectors(api, demo["admin_key"], state)
        _banner(console, api, sandbox_url, demo, state)
        while all(p.poll() is None for p in processes):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            process.wait(15)


def _banner(
    console: Console, api: str, sandbox: str, demo: dict[str, Any], state: dict[str, Any]
) -> None:
    store = state["bigcommerce"]["stores"][0]
    token = state["bigcommerce"]["accounts"][0]["access_token"]
    console.rule("athos-identity is running")
    console.print(f"Console (Data > Data Sources): [bold]{api}/console[/bold]", soft_wrap=True)
    console.print(
        f"Admin API key (paste it to sign in): [bold]{demo['admin_key']}[/bold]", soft_wrap=True
    )
    console.print(f"Look-up API key (messaging services): {demo['lookup_key']}", soft_wrap=True)
    console.print(f"API reference: {api}/docs", soft_wrap=True)
    console.print(f"Sandbox: {sandbox}/sandbox/state", soft_wrap=True)
    console.print(
        f"Demo BigCommerce store: API path {store['api_path']}  API token {token}", soft_wrap=True
    )
    console.print(
        "Demo Shopify shop: open its connector in the console and click Grant Access.",
        soft_wrap=True,
    )
    console.print("Ctrl-C stops everything.", soft_wrap=True)
