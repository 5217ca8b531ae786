"""Shopify's authorization-code grant: approval page, signed callback, token endpoint.

Expiring offline tokens (``expiring=1``): access token for 3600 s, refresh token for 90 days
that rotates on every use; a used or expired code or refresh token is ``invalid_grant``.
Lifetimes run on the sandbox clock and ``expires_in`` is reported in real seconds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import math
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from athos_identity.sandbox.shopify.store import (
    ACCESS_TOKEN_SECONDS,
    REFRESH_TOKEN_SECONDS,
    ShopifyShop,
)
from athos_identity.sandbox.state import SandboxState

router = APIRouter(prefix="/shopify/{shop}/admin/oauth")


def sign_query(params: dict[str, str], secret: str) -> str:
    """Lowercase hex HMAC-SHA256 of the sorted ``k=v`` pairs joined by ``&`` (hmac excluded)."""
    message = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "hmac")
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}"
        f"</title></head><body><main>{body}</main></body></html>",
        status_code=status,
    )


def _error_page(message: str, status: int = 400) -> HTMLResponse:
    body = f"<h1>Oauth error invalid_request</h1><p>{html.escape(message)}</p>"
    return _page("Oauth error", body, status)


def _requested_scopes(raw: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(s.strip() for s in raw.split(",") if s.strip()))


def _check_request(state: SandboxState, shop_domain: str, params: dict[str, str]) -> str | None:
    if shop_domain not in state.shops:
        return f"Unknown shop {shop_domain}"
    if params.get("client_id") != state.config.shopify_client_id:
        return "The client_id provided is invalid"
    redirect_uri = params.get("redirect_uri", "")
    if not redirect_uri.startswith(("http://", "https://")):
        return "The redirect_uri is missing or not an absolute http(s) URL"
    return None


@router.get("/authorize")
async def approval_page(request: Request, shop: str) -> HTMLResponse:
    state: SandboxState = request.app.state.sandbox
    params = dict(request.query_params)
    problem = _check_request(state, shop, params)
    if problem:
        return _error_page(problem)
    scopes = _requested_scopes(params.get("scope", "")) + _requested_scopes(
        params.get("optional_scopes", "")
    )
    hidden = "".join(
        f"<input type='hidden' name='{html.escape(k)}' value='{html.escape(v)}'>"
        for k, v in params.items()
    )
    items = "".join(f"<li>{html.escape(s)}</li>" for s in scopes) or "<li>(no scopes)</li>"
    body = (
        f"<h1>Install app on {html.escape(shop)}</h1>"
        "<p>This sandbox app is requesting access to:</p>"
        f"<ul id='scopes'>{items}</ul>"
        f"<form method='post' action='/shopify/{html.escape(shop)}/admin/oauth/authorize'>"
        f"{hidden}<button type='submit' name='decision' value='approve'>Install app</button>"
        "</form>"
    )
    return _page(f"Install app - {shop}", body)


@router.post("/authorize")
async def approve(request: Request, shop: str) -> Response:
    state: SandboxState = request.app.state.sandbox
    params = dict(parse_qsl((await request.body()).decode()))
    params.pop("decision", None)
    problem = _check_request(state, shop, params)
    if problem:
        return _error_page(problem)
    store = state.shops[shop]
    required, optional = _granted(state, store, params)
    now = state.clock.now()
    store.granted_scopes = frozenset(required + optional)
    store.optional_granted = frozenset(optional)
    code = store.issue_code(required + optional, now)
    callback = {
        "code": code.code,
        "host": base64.b64encode(f"admin.shopify.com/store/{store.name}".encode())
        .decode()
        .rstrip("="),
        "shop": shop,
        "state": params.get("state", ""),
        "timestamp": str(int(now)),
    }
    callback["hmac"] = sign_query(callback, state.config.shopify_client_secret)
    redirect_uri = params["redirect_uri"]
    separator = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(f"{redirect_uri}{separator}{urlencode(callback)}", status_code=302)


def _granted(
    state: SandboxState, store: ShopifyShop, params: dict[str, str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(required, optional) scopes the merchant grants. `scope=` asks for required ones;
    `optional_scopes=` for optional ones, honoured only when the app's configuration declares
    them; the sandbox's withheld scopes stand for a merchant declining."""
    required = tuple(
        s for s in _requested_scopes(params.get("scope", "")) if s not in store.withheld_scopes
    )
    declared = set(state.config.shopify_optional_scopes)
    optional = tuple(
        s
        for s in _requested_scopes(params.get("optional_scopes", ""))
        if s in declared and s not in required and s not in store.withheld_scopes
    )
    return required, optional


async def _form_or_json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if "json" in request.headers.get("content-type", ""):
        try:
            parsed = json.loads(raw or b"{}")
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    merged: dict[str, Any] = dict(request.query_params)
    merged.update(parse_qsl(raw.decode()))
    return merged


def _oauth_error(error: str, description: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def _truthy(value: Any) -> bool:
    return str(value).lower() in ("1", "true", "yes")


def _token_response(
    state: SandboxState, store: ShopifyShop, scopes: Iterable[str], *, expiring: bool
) -> JSONResponse:
    now = state.clock.now()
    access, refresh = store.issue_tokens(now, expiring=expiring)
    body: dict[str, Any] = {"access_token": access.token, "scope": ",".join(sorted(scopes))}
    if refresh is not None:
        body["expires_in"] = math.ceil(state.clock.to_real_seconds(ACCESS_TOKEN_SECONDS))
        body["refresh_token"] = refresh.token
        body["refresh_token_expires_in"] = math.ceil(
            state.clock.to_real_seconds(REFRESH_TOKEN_SECONDS)
        )
    return JSONResponse(body)


@router.post("/access_token")
async def access_token(request: Request, shop: str) -> JSONResponse:
    state: SandboxState = request.app.state.sandbox
    params = await _form_or_json(request)
    store = state.shops.get(shop)
    if store is None:
        return _oauth_error("invalid_request", f"Unknown shop {shop}", 404)
    if params.get("client_id") != state.config.shopify_client_id or not hmac.compare_digest(
        str(params.get("client_secret", "")), state.config.shopify_client_secret
    ):
        return _oauth_error("invalid_client", "Client authentication failed", 401)
    now = state.clock.now()
    if params.get("grant_type") == "refresh_token":
        refresh = store.refresh_tokens.get(str(params.get("refresh_token", "")))
        if refresh is None or refresh.used or refresh.expires_at <= now or not store.installed:
            return _oauth_error("invalid_grant", "The refresh token is invalid, used or expired")
        refresh.used = True  # rotation: each refresh token works exactly once
        return _token_response(state, store, store.granted_scopes or (), expiring=True)
    code = store.codes.get(str(params.get("code", "")))
    if code is None or code.used or code.expires_at <= now:
        return _oauth_error(
            "invalid_grant", "The authorization code was not found or was already used"
        )
    code.used = True
    # The scopes of this code's approval, whatever was approved since.
    expiring = _truthy(params.get("expiring", "0"))
    return _token_response(state, store, code.scopes, expiring=expiring)
