"""Fixtures of the connector tests: the platform sandbox served by uvicorn on a free port.

Not a conftest.py on purpose: several test directories importing `from support import ...`
would then see this module instead of tests/conftest.py (they share the module name
"conftest"). Test modules load it as a plugin: `pytest_plugins = ["bigcommerce_fixtures"]`.

The server comes from the sandbox's own harness (tests/sandbox/sandbox_harness.py), started
once per session; the service's settings point at it for each test that asks.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sandbox"))

from sandbox_harness import (
    RunningSandbox,
    WebhookSink,
    running_sandbox,
    running_webhook_sink,
)

from athos_identity.sandbox.config import SandboxConfig
from athos_identity.settings import get_settings

FULL_READ_SCOPES = [
    "store_v2_customers_read_only",
    "store_v2_orders_read_only",
    "store_v2_products_read_only",
    "store_v2_content_read_only",
    "store_themes_read_only",
]


@dataclass
class BigCommerceStore:
    """A fresh sandbox store with a full read-only API account."""

    sandbox: RunningSandbox
    store_hash: str
    token: str

    @property
    def api_path(self) -> str:
        return f"https://api.bigcommerce.com/stores/{self.store_hash}/v3/"

    def new_account(self, scopes: list[str]) -> str:
        with self.sandbox.client() as client:
            response = client.post(
                "/sandbox/bigcommerce/accounts",
                json={"store_hash": self.store_hash, "scopes": scopes},
            )
            response.raise_for_status()
        return str(response.json()["access_token"])

    def delete_account(self, token: str) -> None:
        """The merchant deletes the API account: its token answers 401 from now on, and the
        hooks it registered are gone."""
        with self.sandbox.client() as client:
            accounts = client.get("/sandbox/state").json()["bigcommerce"]["accounts"]
            [client_id] = [a["client_id"] for a in accounts if a["access_token"] == token]
            client.delete(f"/sandbox/bigcommerce/accounts/{client_id}").raise_for_status()

    def hooks(self) -> list[dict[str, object]]:
        return [h.as_json() for h in self.sandbox.state.stores[self.store_hash].hooks.values()]

    def add_fault(self, **spec: object) -> None:
        with self.sandbox.client() as client:
            client.post(
                "/sandbox/faults",
                json={"platform": "bigcommerce", "path_contains": self.store_hash, **spec},
            ).raise_for_status()


@pytest.fixture(scope="session")
def bc_sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox(SandboxConfig(customers=30, orders=30, seed=7)) as running:
        yield running


@pytest.fixture
def bc_webhook_sink() -> Iterator[WebhookSink]:
    with running_webhook_sink() as sink:
        yield sink


@pytest.fixture
def bc_settings(
    bc_sandbox: RunningSandbox, test_database: object, monkeypatch: pytest.MonkeyPatch
) -> RunningSandbox:
    """Point the service at the sandbox (and make the clients retry quickly)."""
    settings = get_settings()
    monkeypatch.setattr(settings, "bigcommerce_base_url", f"{bc_sandbox.url}/bigcommerce")
    monkeypatch.setattr(settings, "bigcommerce_max_retries", 3)
    return bc_sandbox


@pytest.fixture
def bc_store(bc_settings: RunningSandbox) -> BigCommerceStore:
    store_hash = "t" + uuid.uuid4().hex[:10]
    with bc_settings.client() as client:
        client.post(
            "/sandbox/bigcommerce/stores",
            json={"store_hash": store_hash, "customers": 20, "orders": 20, "plan": "unlimited"},
        ).raise_for_status()
    store = BigCommerceStore(bc_settings, store_hash, "")
    store.token = store.new_account(FULL_READ_SCOPES)
    return store
