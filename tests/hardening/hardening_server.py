"""Fixtures of the hardening tests: the real API in a uvicorn process on a free port.

Loaded as a plugin (`pytest_plugins = ["hardening_server"]`), not as a conftest.py: a
second module named "conftest" would shadow tests/conftest.py (see tests/support.py).

A separate process, not the ASGI app in this one: schemathesis calls the API
synchronously, from threads with event loops of their own, while the test process's
database engine belongs to pytest's event loop. The server has a database of its own
(migrated once; not the per-test-truncated test_database, so one tenant serves the whole
session), and platform base URLs that refuse connections at once: no real Shopify or
BigCommerce is ever called, and nothing waits on a network timeout.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from athos_identity import db
from support import (
    TEST_MASTER_SECRET,
    DatabaseUnderTest,
    bearer,
    create_database,
    drop_database,
)


@dataclass(frozen=True)
class RunningApi:
    base_url: str
    env: dict[str, str]
    workdir: Path

    def cli(self, *args: str) -> dict[str, str]:
        """`athos-identity ... --json` against the server's database."""
        done = subprocess.run(
            [sys.executable, "-m", "athos_identity", *args, "--json"],
            cwd=self.workdir, env=self.env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@dataclass(frozen=True)
class FuzzTenant:
    """A tenant of the server's database with a key of every scope and some resources."""

    tenant_id: str
    keys: dict[str, str]  # scope -> key
    ids: dict[str, list[str]]  # path parameter name -> ids the tenant has


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_env(database: DatabaseUnderTest, data_dir: Path) -> dict[str, str]:
    refused = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATHOS_")}
    env.update(
        ATHOS_DATABASE_URL=database.sqlalchemy_url,
        ATHOS_MASTER_SECRET=TEST_MASTER_SECRET,
        ATHOS_DATA_DIR=str(data_dir),
        ATHOS_LOG_LEVEL="WARNING",
        ATHOS_DB_POOL_SIZE="4",
        ATHOS_BIGCOMMERCE_BASE_URL=refused,
        ATHOS_BIGCOMMERCE_MAX_RETRIES="0",
        ATHOS_SHOPIFY_BASE_URL=refused + "/shopify/{shop}",
        ATHOS_SHOPIFY_MAX_RETRIES="0",
        ATHOS_SHOPIFY_CLIENT_ID="hardening-client-id",
        ATHOS_SHOPIFY_CLIENT_SECRET="hardening-client-secret",
        ATHOS_PUBLIC_URL="http://127.0.0.1:9",
    )
    return env


@pytest.fixture(scope="session")
def fuzz_database(postgres_server: str) -> Iterator[DatabaseUnderTest]:
    name, url = create_database(postgres_server)
    database = DatabaseUnderTest(url=url)
    db.migrate(database.sqlalchemy_url)
    try:
        yield database
    finally:
        drop_database(postgres_server, name)


@pytest.fixture(scope="session")
def api_server(
    fuzz_database: DatabaseUnderTest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningApi]:
    workdir = tmp_path_factory.mktemp("hardening-api")  # no .env file to pick up
    env = _server_env(fuzz_database, workdir)
    port = _free_port()
    log = (workdir / "server.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "uvicorn", "athos_identity.app:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        ],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "the API server did not start:\n" + (workdir / "server.log").read_text()
                )
            time.sleep(0.1)
        yield RunningApi(base_url, env, workdir)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        server_log = (workdir / "server.log").read_text(errors="replace")
        if "Traceback" in server_log or "unhandled" in server_log:
            print("API server log:\n" + server_log[-20000:])


@pytest.fixture(scope="session")
def fuzz_tenant(api_server: RunningApi, fuzz_database: DatabaseUnderTest) -> FuzzTenant:
    created = api_server.cli("tenants", "create", "Fuzz", "--region", "US")
    tenant_id = created["tenant_id"]
    keys = {"admin": created["key"]}
    for scope in ("lookup", "operator"):
        keys[scope] = api_server.cli("keys", "create", "--tenant", tenant_id, "--scope", scope)[
            "key"
        ]
    connectors: dict[str, str] = {}
    with httpx.Client(base_url=api_server.base_url, headers=bearer(keys["admin"])) as http:
        for platform, store in (("shopify", "fuzz.myshopify.com"), ("bigcommerce", "fuzzst")):
            created_connector = http.post(
                "/v1/connectors", json={"platform": platform, "name": platform, "store": store}
            )
            assert created_connector.status_code == 201, created_connector.text
            connectors[platform] = created_connector.json()["id"]
        key_ids = [k["id"] for k in http.get("/v1/keys").json() if "admin" not in k["scopes"]]
    ids = {"connector_id": list(connectors.values()), "key_id": key_ids}
    ids.update(_seed(fuzz_database, tenant_id, connectors))
    return FuzzTenant(tenant_id, keys, ids)


def _seed(database: DatabaseUnderTest, tenant_id: str, connectors: dict[str, str]) -> dict:
    """Rows the routes can find (written as the owner): a sync run, a compliance request,
    a customer's order and its line."""
    import uuid

    import psycopg

    run_id, request_id = uuid.uuid4(), uuid.uuid4()
    bc, shop = connectors["bigcommerce"], connectors["shopify"]
    with psycopg.connect(database.url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO sync_runs (tenant_id, id, connector_id, mode, status)"
            " VALUES (%s, %s, %s, 'full', 'succeeded')",
            (tenant_id, run_id, bc),
        )
        conn.execute(
            "INSERT INTO shopify_compliance_requests"
            " (tenant_id, id, connector_id, shop, topic, webhook_id, customer_id)"
            " VALUES (%s, %s, %s, 'fuzz.myshopify.com', 'customers/redact', 'w1', '42')",
            (tenant_id, request_id, shop),
        )
        conn.execute(
            "INSERT INTO orders (tenant_id, connector_id, order_id, customer_id, key_version,"
            " currency, total, status) VALUES (%s, %s, 'o1', '42', 1, 'USD', 12.5, 'paid')",
            (tenant_id, bc),
        )
        conn.execute(
            "INSERT INTO order_lines (tenant_id, connector_id, order_id, line_id, quantity)"
            " VALUES (%s, %s, 'o1', 'l1', 2)",
            (tenant_id, bc),
        )
    return {"run_id": [str(run_id)], "request_id": [str(request_id)], "customer_id": ["42"]}
