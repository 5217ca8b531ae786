"""Data > Data Sources in a real browser: Shopify Grant Access and Revoke Authorization,
BigCommerce token paste, syncs through the real worker, and the page's safety rules.

Run alone with `.venv/bin/python -m pytest tests/e2e`; screenshots of a failed journey are
kept under $ATHOS_E2E_ARTIFACTS (default: the temp dir's athos-e2e/).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
from e2e_support import FULL_READ_SCOPES, PHONE, Service, Steps
from playwright.async_api import Page, expect

pytest_plugins = ["e2e_fixtures"]

TenantKeys = Any
ENDED = re.compile(r"^(succeeded|failed|cancelled)$")
SYNC_TIMEOUT_MS = 90_000


# --- the merchant's steps --------------------------------------------------------------------


async def sign_in(page: Page, service: Service, key: str) -> None:
    await page.goto(service.console())
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await expect(page.get_by_label("Admin API key")).to_be_focused()
    await page.get_by_label("Admin API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Data Sources", level=1)).to_be_visible()


async def add_source(page: Page, platform: str, name: str, store: str = "") -> None:
    await page.get_by_label("Platform").select_option(platform)
    await page.locator("#add-name").fill(name)
    if store:
        await page.locator("#add-store").fill(store)
    await page.get_by_role("button", name="Add data source").click()
    await expect(page.locator("#connector-title")).to_have_text(name)


async def run_sync(page: Page, button: str) -> str:
    """Start a sync and watch the progress panel until the run ends; returns its status."""
    progress = page.locator("#sync-progress")
    previous = await progress.get_attribute("data-run")
    await page.get_by_role("button", name=button).click()
    await expect(progress).to_be_visible()
    if previous:
        await expect(progress).not_to_have_attribute("data-run", previous)
    await expect(progress).to_have_attribute("data-status", ENDED, timeout=SYNC_TIMEOUT_MS)
    await expect(page.get_by_role("button", name="Cancel sync")).to_be_hidden()
    return str(await progress.get_attribute("data-status"))


def rows_of(owner_conn: Any, table: str, connector_id: str) -> int:
    query = f"SELECT count(*) FROM {table} WHERE connector_id = %s"
    return int(owner_conn.execute(query, (uuid.UUID(connector_id),)).fetchone()[0])


def page_errors(steps: Steps) -> list[str]:
    """What the pages logged as errors (a CSP violation, an exception), except the 4xx
    answers the journeys provoke on purpose (the browser logs each failed request)."""
    return [e for e in steps.errors if "Failed to load resource" not in e]


# --- journeys ----------------------------------------------------------------------------------


async def test_shopify_grant_sync_and_revoke(
    service: Service, tenant: TenantKeys, desktop: Page, steps: Steps, owner_conn: Any
) -> None:
    page = desktop
    shop = service.new_shop()
    await sign_in(page, service, tenant.admin_key)
    await expect(page.locator("#sources-empty")).to_be_visible()
    await steps.shot(page, "signed in, no data source")

    await add_source(page, "shopify", "Main store", shop)
    connector_id = await page.locator("#connector").get_attribute("data-connector")
    assert connector_id
    await expect(page.locator("#shopify-settings")).to_be_visible()
    await expect(page.get_by_role("heading", name="Store Settings")).to_be_visible()
    await expect(page.get_by_role("heading", name="Additional Data Access")).to_be_visible()
    await expect(page.locator("#connector-state-text")).to_contain_text("Grant Access")
    await expect(page.get_by_role("button", name="Full sync")).to_be_disabled()
    await steps.shot(page, "shopify connector created")

    # Grant Access: Shopify's approval page, then back to the console.
    await page.get_by_role("button", name="Grant Access").click()
    await page.wait_for_url(f"{service.sandbox.url}/shopify/{shop}/admin/oauth/authorize*")
    await expect(page.get_by_role("heading", name=f"Install app on {shop}")).to_be_visible()
    await steps.shot(page, "shopify approval page")
    await page.get_by_role("button", name="Install app").click()
    await page.wait_for_url(service.console())  # the result was read, the address cleaned
    await expect(page.locator("#flash")).to_contain_text("Access granted")
    await expect(page.locator("#connector-title")).to_have_text("Main store")
    revoke = page.get_by_role("button", name="Revoke Authorization")
    await expect(revoke).to_be_visible()
    await expect(page.get_by_role("button", name="Grant Access")).to_be_hidden()
    await expect(page.locator("#connector-meta")).to_contain_text("Connected")
    await expect(page.locator("#connector-meta")).to_contain_text("read_customers")
    await steps.shot(page, "granted, revoke authorization shown")

    # A full sync through the real worker.
    status = await run_sync(page, "Full sync")
    await steps.shot(page, f"shopify sync {status}")
    history = page.locator("#sync-history-body tr")
    await expect(history).to_have_count(1)
    assert status == "succeeded"
    await expect(page.locator("#sync-text")).to_contain_text("Sync succeeded")
    assert rows_of(owner_conn, "identity_links", connector_id) > 0

    # Revoke Authorization: the dialog says what goes; then tokens and data are gone.
    await revoke.click()
    dialog = page.locator("#confirm")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("hashed e-mail addresses and phone numbers")
    await expect(dialog).to_contain_text("sales data")
    await expect(dialog).to_contain_text("sync history")
    await expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    await steps.shot(page, "revoke confirmation")
    await dialog.get_by_role("button", name="Revoke Authorization").click()
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#flash")).to_contain_text("Authorization revoked")
    await expect(page.get_by_role("button", name="Grant Access")).to_be_visible()
    await expect(page.locator("#connector-meta")).to_contain_text("Revoked")
    await expect(page.locator("#connector-state-text")).to_contain_text("were deleted")
    await expect(page.get_by_role("button", name="Full sync")).to_be_disabled()
    await steps.shot(page, "revoked")
    for table in ("connector_credentials", "identity_links", "customers", "orders", "sync_runs"):
        assert rows_of(owner_conn, table, connector_id) == 0, table
    assert not service.sandbox.state.shops[shop].granted_scopes

    await expect(page.locator("#sync-history-empty")).to_be_visible()  # history purged too
    await expect(page.locator("#sync-progress")).to_be_hidden()

    # The list shows the state; the sync history went with the data.
    await page.get_by_role("button", name="All data sources").click()
    row = page.locator(f"tr[data-connector-row='{connector_id}']")
    await expect(row).to_contain_text("Revoked")
    await expect(row).to_contain_text("Never")
    await steps.shot(page, "list after revoke")
    assert page_errors(steps) == []


async def test_bigcommerce_token_paste_and_sync(
    service: Service, tenant: TenantKeys, desktop: Page, steps: Steps, owner_conn: Any
) -> None:
    page = desktop
    store_hash = service.new_bigcommerce_store()
    without_customers = service.bigcommerce_account(
        store_hash, [s for s in FULL_READ_SCOPES if "customers" not in s]
    )
    good = service.bigcommerce_account(store_hash, FULL_READ_SCOPES)
    with service.sandbox.client() as sandbox:
        expected = sandbox.get(f"/sandbox/bigcommerce/stores/{store_hash}/expected").json()

    await sign_in(page, service, tenant.admin_key)
    await add_source(page, "bigcommerce", "BC store")
    connector_id = await page.locator("#connector").get_attribute("data-connector")
    assert connector_id
    await expect(page.locator("#bigcommerce-settings")).to_be_visible()
    await expect(page.locator("#shopify-settings")).to_be_hidden()

    # A token lacking Customers: the exact permission to set, next to the token field.
    await page.get_by_label("API Path (or store hash)").fill(
        service.bigcommerce_api_path(store_hash)
    )
    await page.get_by_label("API Token").fill(without_customers)
    await page.get_by_role("button", name="Save").click()
    token_error = page.locator("#bc-token-error")
    await expect(token_error).to_be_visible()
    await expect(token_error).to_contain_text("Customers: Read-only")
    await expect(page.get_by_label("API Token")).to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_label("API Token")).to_be_focused()
    await steps.shot(page, "token lacking customers")
    assert rows_of(owner_conn, "connector_credentials", connector_id) == 0

    # A good token: saved, and only its hint is shown from now on.
    await page.get_by_label("API Token").fill(good)
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator("#flash")).to_contain_text("Token saved")
    await expect(token_error).to_be_hidden()
    token = page.get_by_label("API Token")
    await expect(token).to_have_value("")
    await expect(token).to_have_attribute("placeholder", f"Saved: …{good[-4:]}")
    await expect(page.locator("#connector-meta")).to_contain_text(f"…{good[-4:]}")
    assert good not in await page.content()
    await expect(page.locator("#connector-meta")).to_contain_text("Connected")
    await steps.shot(page, "token saved")

    # A full sync, watched to the end.
    status = await run_sync(page, "Full sync")
    await steps.shot(page, "bigcommerce sync ended")
    assert status == "succeeded", await page.locator("#sync-error").text_content()
    counts = f"{expected['customer_count']} customers, {expected['order_count']} orders"
    await expect(page.locator("#sync-text")).to_contain_text(f"Sync succeeded: {counts}")
    first_run = page.locator("#sync-history-body tr").first
    await expect(first_run).to_contain_text("succeeded")
    await expect(first_run).to_contain_text("full")
    assert rows_of(owner_conn, "identity_links", connector_id) > 0

    # An incremental sync next to it in the history.
    assert await run_sync(page, "Sync changes") == "succeeded"
    await expect(page.locator("#sync-history-body tr")).to_have_count(2)

    # A slow store: the progress is live (status, stream, records), and Cancel stops it.
    with service.sandbox.client() as sandbox:
        sandbox.post(
            "/sandbox/faults",
            json={"platform": "bigcommerce", "kind": "slow", "rate": 1.0, "delay_seconds": 1.5,
                  "path_contains": f"/stores/{store_hash}/v2/orders"},
        ).raise_for_status()  # fmt: skip
    try:
        await page.get_by_role("button", name="Full sync").click()
        progress = page.locator("#sync-progress")
        await expect(progress).to_have_attribute("data-status", "running", timeout=20_000)
        await expect(page.locator("#sync-text")).to_contain_text("Running (full)")
        await expect(page.locator("#sync-text")).to_contain_text("records")
        announce = page.locator("#sync-announce")  # what screen readers hear
        await expect(announce).to_have_attribute("aria-live", "polite")
        await expect(announce).to_contain_text("Sync running")
        await steps.shot(page, "sync running")
        await page.get_by_role("button", name="Cancel sync").click()
        await expect(progress).to_have_attribute("data-status", "cancelled")
        await expect(page.locator("#sync-text")).to_contain_text("Sync cancelled")
        await expect(announce).to_contain_text("Sync cancelled")
        await expect(page.locator("#sync-history-body tr").first).to_contain_text("cancelled")
        await steps.shot(page, "sync cancelled")
    finally:
        with service.sandbox.client() as sandbox:
            sandbox.delete("/sandbox/faults").raise_for_status()

    await page.get_by_role("button", name="All data sources").click()
    row = page.locator(f"tr[data-connector-row='{connector_id}']")
    await expect(row).to_contain_text("Connected")
    await expect(row).to_contain_text("cancelled")
    await expect(row).to_contain_text(store_hash)
    await steps.shot(page, "list after sync")

    # The same page, 360 px wide: nothing wider than the screen.
    await page.set_viewport_size(PHONE)
    await steps.shot(page, "list at 360 px")
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    await page.get_by_role("button", name="Open BC store").click()
    await expect(page.locator("#connector-title")).to_be_focused()
    await steps.shot(page, "connector at 360 px")
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]

    # The merchant deletes the API account in BigCommerce: Test connection says what to do.
    service.sandbox.state.delete_account(service.sandbox.state.bigcommerce_accounts[good].client_id)
    await page.get_by_role("button", name="Test connection").click()
    await expect(page.locator("#connector-meta")).to_contain_text("Needs re-authorization")
    help_text = page.locator("#connector-state-text")
    await expect(help_text).to_contain_text("BigCommerce refused the stored token")
    await expect(help_text).to_contain_text("paste its token below")
    await expect(page.get_by_role("button", name="Full sync")).to_be_disabled()
    await steps.shot(page, "needs reauthorization at 360 px")
    assert page_errors(steps) == []


async def test_sign_in_sign_out_and_nothing_rendered_as_html(
    service: Service, tenant: TenantKeys, desktop: Page, steps: Steps
) -> None:
    page = desktop
    hostile = '<img src=x onerror="window.__xss=1">'
    async with httpx.AsyncClient(base_url=service.url, headers=tenant.admin) as api:
        created = await api.post(
            "/v1/connectors", json={"platform": "bigcommerce", "name": hostile}
        )
        assert created.status_code == 201, created.text

    # A wrong key: an error next to the field, nothing stored.
    await page.goto(service.console())
    await page.get_by_label("Admin API key").fill("athk_not-a-key")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#api-key-error")).to_contain_text("not accepted")
    assert await page.evaluate("() => sessionStorage.length") == 0
    await steps.shot(page, "wrong key")

    # The key stays out of the address bar; API values are text, never markup.
    await page.get_by_label("Admin API key").fill(tenant.admin_key)
    await page.keyboard.press("Enter")
    await expect(page.locator("#sources-body")).to_contain_text(hostile)
    assert tenant.admin_key not in page.url
    assert await page.locator("#sources-body img").count() == 0
    assert await page.evaluate("() => window.__xss") is None
    await page.get_by_role("button", name=f"Open {hostile}").click()
    await expect(page.locator("#connector-title")).to_have_text(hostile)
    assert await page.locator("#connector img").count() == 0
    await steps.shot(page, "hostile name shown as text")

    # A crafted Shopify result cannot put its own words on the page.
    await page.goto(service.console("?shopify=failed&reason=state_expired&message=Call+555-0100"))
    await expect(page.locator("#flash")).to_contain_text("longer than 10 minutes")
    await expect(page.locator("body")).not_to_contain_text("555-0100")
    assert page.url == service.console()
    await steps.shot(page, "grant failure message")

    # The CSP: no inline script, nothing from elsewhere.
    response = await page.request.get(service.console())
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy

    # Sign out forgets the key.
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert await page.evaluate("() => sessionStorage.length") == 0
    await page.reload()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await steps.shot(page, "signed out")
    assert page_errors(steps) == []


async def tab_to(page: Page, element_id: str, limit: int = 60) -> None:
    """Press Tab until the element has the focus, as a keyboard user would."""
    for _ in range(limit):
        if await page.evaluate("() => document.activeElement && document.activeElement.id") == (
            element_id
        ):
            return
        await page.keyboard.press("Tab")
    raise AssertionError(f"#{element_id} cannot be reached with the Tab key")


async def focus_ring(page: Page) -> tuple[str, str]:
    """The focused element's outline: what tells a keyboard user where they are."""
    style = await page.evaluate(
        "() => { const s = getComputedStyle(document.activeElement);"
        " return [s.outlineStyle, s.outlineWidth]; }"
    )
    return str(style[0]), str(style[1])


async def test_a_data_source_added_and_deleted_with_the_keyboard_alone(
    service: Service, tenant: TenantKeys, desktop: Page, steps: Steps
) -> None:
    page = desktop
    await page.goto(service.console())
    await expect(page.get_by_label("Admin API key")).to_be_focused()
    await page.keyboard.type(tenant.admin_key)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Data Sources", level=1)).to_be_visible()

    await tab_to(page, "add-platform")
    assert await focus_ring(page) == ("solid", "3px")
    await page.keyboard.type("BigCommerce")  # a select takes the typed option
    await page.keyboard.press("Tab")
    await page.keyboard.type("Keyboard store")
    await tab_to(page, "add-store")
    await page.keyboard.type("kbd01")
    await page.keyboard.press("Enter")  # submits the form
    await expect(page.locator("#connector-title")).to_have_text("Keyboard store")
    await expect(page.locator("#connector-title")).to_be_focused()
    await steps.shot(page, "added with the keyboard")

    # The confirmation dialog holds the focus; Escape leaves it and keeps the source.
    await tab_to(page, "delete-connector")
    assert await focus_ring(page) == ("solid", "3px")
    await page.keyboard.press("Enter")
    dialog = page.locator("#confirm")
    await expect(dialog).to_be_visible()
    await expect(page.locator("#confirm-cancel")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#connector-title")).to_have_text("Keyboard store")

    await tab_to(page, "delete-connector")
    await page.keyboard.press("Enter")
    await tab_to(page, "confirm-ok")
    await page.keyboard.press("Enter")
    await expect(page.locator("#sources-body")).not_to_contain_text("Keyboard store")
    await steps.shot(page, "deleted with the keyboard")
    assert page_errors(steps) == []
