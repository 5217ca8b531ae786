"""GET /console: the Data > Data Sources page, and its script and style sheet.

The page holds no data and no secret: its script asks the REST API for everything with
the admin key the merchant pastes (kept in sessionStorage). Served with a strict
Content-Security-Policy (no inline script, nothing from another origin).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from athos_identity import __version__
from athos_identity.kit.errors import NotFound

HERE = Path(__file__).parent
STATIC = HERE / "static"
templates = Jinja2Templates(directory=HERE / "templates")

router = APIRouter(include_in_schema=False)

# The only files served, with their types: nothing else under static/ is reachable.
ASSETS = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@router.get("/console", response_class=HTMLResponse)
async def console(request: Request) -> Response:
    """The Data Sources page (the Shopify callback lands here with ?shopify=…)."""
    return templates.TemplateResponse(
        request,
        "console.html",
        {"version": __version__},
        headers=SECURITY_HEADERS,
    )


@router.get("/console/static/{name}")
async def asset(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFound("No such file.")
    body = (STATIC / name).read_bytes()
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
    return Response(body, media_type=media_type, headers=headers)
