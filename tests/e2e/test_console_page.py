"""The console page as served (no browser): its assets, its headers, its safety rules."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

STATIC = Path(__file__).resolve().parents[2] / "src" / "athos_identity" / "console" / "static"


async def test_console_page_and_assets_are_served_by_the_app(client: httpx.AsyncClient) -> None:
    page = await client.get("/console")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "Data Sources" in page.text
    assets = re.findall(r'(?:src|href)="(/console/static/[^"?]+)', page.text)
    assert sorted(assets) == ["/console/static/console.css", "/console/static/console.js"]
    for path in assets:
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.headers["x-content-type-options"] == "nosniff"
    # Nothing from another origin: no CDN, no external font.
    assert not re.search(r'(?:src|href)="(?:https?:)?//', page.text)


async def test_console_page_headers_forbid_inline_script_and_framing(
    client: httpx.AsyncClient,
) -> None:
    headers = (await client.get("/console")).headers
    policy = headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe" not in policy
    assert "frame-ancestors 'none'" in policy and "connect-src 'self'" in policy
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"


async def test_only_the_console_assets_are_reachable(client: httpx.AsyncClient) -> None:
    for path in ("/console/static/routes.py", "/console/static/..%2froutes.py",
                 "/console/static/../routes.py", "/console/static/console.html"):  # fmt: skip
        response = await client.get(path)
        assert response.status_code == 404, path


async def test_console_is_not_in_the_api_reference(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [p for p in paths if p.startswith("/console")]


def test_the_script_never_writes_markup() -> None:
    """API values reach the page as text: no innerHTML, outerHTML, insertAdjacentHTML,
    document.write or eval in the console's script."""
    code = (STATIC / "console.js").read_text()
    code = re.sub(r"^\s*//.*$", "", code, flags=re.MULTILINE)
    for forbidden in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert forbidden not in code, forbidden
