"""Fixtures and helpers of the Shopify connector tests (loaded with
`pytest_plugins = ["shopify_fixtures"]`; not a conftest.py, see bigcommerce_fixtures.py).

The Shopify sandbox runs under uvicorn on a free port (tests/sandbox/sandbox_harness.py);
the service's settings point at it. The service itself is driven in-process through
httpx's ASGI transport; the merchant's browser steps against the sandbox (approval page,
Install button, redirect) are real HTTP.
"""

from __future__ import annotations

import itertools
import re
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sandbox"))

from sandbox_harness import (
    RunningSandbox,
    WebhookSink,
    running_sandbox,
    running_webhook_sink,
)

from athos_identity.identity.normalize import normalize_email
from athos_identity.sandbox.config import SandboxConfig
from athos_identity.settings import get_settings


@pytest.fixture(scope="session")
def shopify_sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox(SandboxConfig(customers=20, orders=20, seed=23)) as running:
        yield running


@pytest.fixture
def shopify_sink() -> Iterator[WebhookSink]:
    """Stands in for ATHOS_PUBLIC_URL: where the sandbox sends webhooks and browsers."""
    with running_webhook_sink() as sink:
        yield sink


@pytest.fixture
def shopify_settings(
    shopify_sandbox: RunningSandbox,
    shopify_sink: WebhookSink,
    test_database: object,
    monkeypatch: pytest.MonkeyPatch,
) -> RunningSandbox:
    settings = get_settings()
    config = shopify_sandbox.state.config
    monkeypatch.setattr(settings, "shopify_base_url", f"{shopify_sandbox.url}/shopify/{{shop}}")
    monkeypatch.setattr(settings, "shopify_client_id", config.shopify_client_id)
    monkeypatch.setattr(settings, "shopify_client_secret", SecretStr(config.shopify_client_secret))
    monkeypatch.setattr(settings, "shopify_previous_client_secret", None)
    monkeypatch.setattr(settings, "shopify_max_retries", 2)
    monkeypatch.setattr(settings, "public_url", shopify_sink.url)
    return shopify_sandbox


@dataclass
class Shop:
    sandbox: RunningSandbox
    domain: str

    @property
    def store(self) -> Any:
        return self.sandbox.state.shops[self.domain]

    def customer_ids(self, count: int = 3) -> list[int]:
        """Ids of customers with a valid e-mail address (the generated data is messy)."""

        def valid(email: str | None) -> bool:
            try:
                return bool(email) and bool(normalize_email(email or ""))
            except Exception:
                return False

        found = (c.id for c in self.store.data.customers.iter_by_id() if valid(c.email))
        return list(itertools.islice(found, count))

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self.sandbox.client() as client:
            response = client.request(
                method, f"/sandbox/shopify/shops/{self.domain}{path}", **kwargs
            )
        response.raise_for_status()
        return response


@pytest.fixture
def shop(shopify_settings: RunningSandbox) -> Shop:
    domain = f"t{uuid.uuid4().hex[:10]}.myshopify.com"
    with shopify_settings.client() as client:
        client.post(
            "/sandbox/shopify/shops",
            json={"shop": domain, "customers": 10, "orders": 10, "plan": "unlimited"},
        ).raise_for_status()
    return Shop(shopify_settings, domain)


# --- the merchant's steps -------------------------------------------------------------------


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = values.get("action", "")
        if tag == "input" and values.get("name"):
            self.fields[values["name"]] = values.get("value", "")


async def create_shopify_connector(client: httpx.AsyncClient, tenant: Any, shop: str) -> str:
    response = await client.post(
        "/v1/connectors",
        json={"platform": "shopify", "name": "My Shopify", "store": shop},
        headers=tenant.admin,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def start_grant(
    client: httpx.AsyncClient, tenant: Any, connector_id: str, **body: Any
) -> dict[str, Any]:
    response = await client.post(
        f"/v1/connectors/{connector_id}/shopify/grant", json=body or None, headers=tenant.admin
    )
    assert response.status_code == 200, response.text
    return response.json()


def approve_in_browser(sandbox: RunningSandbox, authorize_url: str) -> str:
    """The merchant's browser: open Shopify's approval page, press Install; returns the
    callback URL Shopify redirects to (not followed: it points at the service)."""
    with httpx.Client(timeout=10, follow_redirects=False) as browser:
        page = browser.get(authorize_url)
        assert page.status_code == 200, page.text
        assert "Install app" in page.text
        form = _Form()
        form.feed(page.text)
        action = sandbox.url + form.action
        approved = browser.post(action, data={**form.fields, "decision": "approve"})
        assert approved.status_code == 302, approved.text
        return approved.headers["location"]


def callback_params(callback_url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(callback_url).query, keep_blank_values=True)


async def call_callback(client: httpx.AsyncClient, params: list[tuple[str, str]]) -> dict[str, str]:
    """GET the callback on the service; returns the console redirect's query."""
    response = await client.get("/v1/shopify/oauth/callback", params=params)
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert re.match(r"^https?://[^?]+/console\?", location), location
    return dict(parse_qsl(urlsplit(location).query))


async def grant(client: httpx.AsyncClient, tenant: Any, shop: Shop, **body: Any) -> str:
    """Create a connector and take it through the whole Grant Access; returns its id."""
    connector_id = await create_shopify_connector(client, tenant, shop.domain)
    started = await start_grant(client, tenant, connector_id, **body)
    landed = await call_callback(
        client, callback_params(approve_in_browser(shop.sandbox, started["authorize_url"]))
    )
    assert landed["shopify"] == "granted", landed
    return connector_id
