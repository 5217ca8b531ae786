"""Constants and helpers of the browser tests, shared by e2e_fixtures (the fixtures plugin)
and the test modules (a plugin module imported by a test module would escape pytest's
assertion rewriting)."""

from __future__ import annotations

import os
import re
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sandbox"))

from sandbox_harness import RunningSandbox

CHROMIUM = os.environ.get("ATHOS_E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(os.environ.get("ATHOS_E2E_ARTIFACTS", Path(tempfile.gettempdir()) / "athos-e2e"))
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 360, "height": 780}
FULL_READ_SCOPES = [
    "store_v2_customers_read_only",
    "store_v2_orders_read_only",
    "store_v2_products_read_only",
    "store_v2_content_read_only",
    "store_themes_read_only",
]


@dataclass
class Steps:
    """Screenshots of each step of a journey; kept under ARTIFACTS when the test fails."""

    folder: Path
    pages: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    count: int = 0

    async def shot(self, page: Any, name: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{re.sub(r'[^a-z0-9]+', '-', name.lower())}.png"
        await page.screenshot(path=str(path), full_page=True)
        return path

    def watch(self, page: Any) -> Any:
        """Record what the page logs as an error (a CSP violation, an exception)."""
        self.pages.append(page)
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        page.on(
            "console",
            lambda message: (
                self.errors.append(f"console: {message.text}") if message.type == "error" else None
            ),
        )
        return page


@dataclass
class Service:
    url: str
    sandbox: RunningSandbox

    def console(self, query: str = "") -> str:
        return f"{self.url}/console{query}"

    def new_shop(self) -> str:
        domain = f"e2e{uuid.uuid4().hex[:8]}.myshopify.com"
        with self.sandbox.client() as client:
            client.post(
                "/sandbox/shopify/shops",
                json={"shop": domain, "customers": 12, "orders": 12, "plan": "unlimited"},
            ).raise_for_status()
        return domain

    def new_bigcommerce_store(self) -> str:
        store_hash = "e2e" + uuid.uuid4().hex[:8]
        with self.sandbox.client() as client:
            client.post(
                "/sandbox/bigcommerce/stores",
                json={"store_hash": store_hash, "customers": 15, "orders": 15, "plan": "unlimited"},
            ).raise_for_status()
        return store_hash

    def bigcommerce_account(self, store_hash: str, scopes: list[str]) -> str:
        """An API account as the merchant creates it in BigCommerce; returns its token."""
        with self.sandbox.client() as client:
            response = client.post(
                "/sandbox/bigcommerce/accounts", json={"store_hash": store_hash, "scopes": scopes}
            )
            response.raise_for_status()
        return str(response.json()["access_token"])

    def bigcommerce_api_path(self, store_hash: str) -> str:
        return f"{self.sandbox.url}/bigcommerce/stores/{store_hash}/v3/"
