"""BigCommerce REST endpoints under /bigcommerce/stores/{store_hash}/v2|v3/…"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from athos_identity.sandbox.bigcommerce.serialize import (
    PRODUCT_IDS,
    customer_v3,
    line_v2,
    order_v2,
    parse_date,
    product_v3,
)
from athos_identity.sandbox.bigcommerce.store import Account, BigCommerceStore, Hook
from athos_identity.sandbox.delivery import Delivery
from athos_identity.sandbox.state import SandboxState

STATUS_DOCS = "https://developer.bigcommerce.com/api-docs/getting-started/api-status-codes"
MISSING_SCOPE = "You don't have a required scope to access the endpoint"
MAX_LIMIT = 250
DEFAULT_LIMIT = 50
HOOK_SCOPES = (
    "store/customer/*", "store/customer/created", "store/customer/updated",
    "store/customer/deleted", "store/order/*", "store/order/created", "store/order/updated",
    "store/order/archived", "store/order/statusUpdated",
)  # fmt: skip

router = APIRouter(prefix="/bigcommerce/stores/{store_hash}")


class BigCommerceError(Exception):
    """Rendered by the handler in server.py; QuotaHeaders adds the quota headers it lacks."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}

    def response(self) -> Response:
        if self.body is None:
            return Response(status_code=self.status, headers=self.headers)
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


def _error_body(version: str, status: int, title: str) -> Any:
    if version == "v2":
        return [{"status": status, "message": title}]
    return {"status": status, "title": title, "type": STATUS_DOCS, "errors": {}}


@dataclass
class Call:
    state: SandboxState
    store: BigCommerceStore
    account: Account
    headers: dict[str, str]
    base: str  # …/bigcommerce/stores/{hash}

    def json(self, payload: Any, status: int = 200) -> JSONResponse:
        return JSONResponse(payload, status_code=status, headers=self.headers)

    def no_content(self) -> Response:
        return Response(status_code=204, headers=self.headers)

    def fail(self, version: str, status: int, title: str) -> BigCommerceError:
        return BigCommerceError(status, _error_body(version, status, title), self.headers)


def authorize(request: Request, store_hash: str, version: str, resource: str | None) -> Call:
    """Token, then quota, then scope: the order the real API answers in."""
    state: SandboxState = request.app.state.sandbox
    store = state.stores.get(store_hash)
    if store is None:
        raise BigCommerceError(404, _error_body(version, 404, "Store not found"))
    token = request.headers.get("x-auth-token", "")
    account = state.bigcommerce_accounts.get(token)
    if account is None or account.store_hash != store_hash:
        raise BigCommerceError(401, _error_body(version, 401, "Unauthorized"))
    verdict = store.quota.take()
    if not verdict.allowed:
        retry_after = math.ceil(int(verdict.headers["X-Rate-Limit-Time-Reset-Ms"]) / 1000)
        headers = {**verdict.headers, "X-Retry-After": str(max(1, retry_after))}
        raise BigCommerceError(429, _error_body(version, 429, "Too many requests"), headers)
    call = Call(
        state,
        store,
        account,
        verdict.headers,
        str(request.base_url).rstrip("/") + f"/bigcommerce/stores/{store_hash}",
    )
    if resource is not None and not account.can_read(resource):
        raise call.fail(version, 403, MISSING_SCOPE)
    return call


def _page_params(request: Request, version: str, call: Call) -> tuple[int, int]:
    try:
        page = int(request.query_params.get("page", "1"))
        limit = int(request.query_params.get("limit", str(DEFAULT_LIMIT)))
    except ValueError as error:
        raise call.fail(version, 400, "page and limit must be integers") from error
    if page < 1 or limit < 1:
        raise call.fail(version, 400, "page and limit must be positive")
    return page, min(limit, MAX_LIMIT)


def _date_param(request: Request, name: str, version: str, call: Call) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        return parse_date(raw)
    except (ValueError, TypeError) as error:
        raise call.fail(version, 400, f"The field '{name}' is invalid.") from error


def _pagination(total: int, count: int, page: int, limit: int) -> dict[str, Any]:
    total_pages = max(1, math.ceil(total / limit)) if total else 0
    links: dict[str, str] = {"current": f"?page={page}&limit={limit}"}
    if page > 1:
        links["previous"] = f"?page={page - 1}&limit={limit}"
    if page < total_pages:
        links["next"] = f"?page={page + 1}&limit={limit}"
    return {
        "pagination": {
            "total": total,
            "count": count,
            "per_page": limit,
            "current_page": page,
            "total_pages": total_pages,
            "links": links,
        }
    }


# --- V3 customers ---------------------------------------------------------------------------


@router.get("/v3/customers")
async def list_customers(request: Request, store_hash: str) -> Response:
    call = authorize(request, store_hash, "v3", "customers")
    page, limit = _page_params(request, "v3", call)
    low = _date_param(request, "date_modified:min", "v3", call)
    high = _date_param(request, "date_modified:max", "v3", call)
    sort = request.query_params.get("sort", "")
    with_addresses = "addresses" in request.query_params.get("include", "")
    customers = call.store.data.customers
    ids_filter = request.query_params.get("id:in")
    if ids_filter:
        wanted = [int(x) for x in ids_filter.split(",") if x.strip().isdigit()]
        found = [c for c in (customers.get(i) for i in sorted(set(wanted))) if c is not None]
        total, rows = len(found), found[(page - 1) * limit : page * limit]
    elif sort in ("", "date_modified:asc", "id:asc", "date_created:asc"):
        # Generated ids follow updated_at, so one order serves these sorts (changed
        # records differ, which real stores also do under concurrent edits).
        total = customers.count(low, high)
        rows = customers.page_by_updated((page - 1) * limit, limit, low, high)
    else:
        raise call.fail("v3", 422, f"sort {sort!r} is not supported by the sandbox")
    data = [customer_v3(c, call.store.data.country, with_addresses=with_addresses) for c in rows]
    return call.json({"data": data, "meta": _pagination(total, len(data), page, limit)})


# --- V2 orders ------------------------------------------------------------------------------


def _visible_order(call: Call, order_id: int) -> Any:
    order = call.store.data.orders.get(order_id)
    if order is None:
        raise call.fail("v2", 404, "The requested resource was not found.")
    return order


@router.get("/v2/orders")
async def list_orders(request: Request, store_hash: str) -> Response:
    call = authorize(request, store_hash, "v2", "orders")
    page, limit = _page_params(request, "v2", call)
    low = _date_param(request, "min_date_modified", "v2", call)
    high = _date_param(request, "max_date_modified", "v2", call)
    sort = request.query_params.get("sort", "")
    if sort not in ("", "date_modified:asc", "id:asc", "date_created:asc"):
        raise call.fail("v2", 400, f"sort {sort!r} is not supported by the sandbox")
    include = request.query_params.get("include", "")
    embed = "consignments" in include
    rows = call.store.data.orders.page_by_updated((page - 1) * limit, limit, low, high)
    if not rows:
        return call.no_content()  # V2 answers 204 past the last page
    country = call.store.data.country
    return call.json([order_v2(o, country, call.base, embed_lines=embed) for o in rows])


@router.get("/v2/orders/count")
async def count_orders(request: Request, store_hash: str) -> Response:
    call = authorize(request, store_hash, "v2", "orders")
    low = _date_param(request, "min_date_modified", "v2", call)
    high = _date_param(request, "max_date_modified", "v2", call)
    return call.json({"count": call.store.data.orders.count(low, high)})


@router.get("/v2/orders/{order_id}")
async def get_order(request: Request, store_hash: str, order_id: int) -> Response:
    call = authorize(request, store_hash, "v2", "orders")
    order = _visible_order(call, order_id)
    embed = "consignments" in request.query_params.get("include", "")
    return call.json(order_v2(order, call.store.data.country, call.base, embed_lines=embed))


@router.get("/v2/orders/{order_id}/products")
async def order_products(request: Request, store_hash: str, order_id: int) -> Response:
    call = authorize(request, store_hash, "v2", "orders")
    order = _visible_order(call, order_id)
    page, limit = _page_params(request, "v2", call)
    lines = order.lines[(page - 1) * limit : page * limit]
    if not lines:
        return call.no_content()
    return call.json([line_v2(order, line) for line in lines])


# --- probes for other scopes ----------------------------------------------------------------


@router.get("/v3/catalog/products")
async def list_products(request: Request, store_hash: str) -> Response:
    call = authorize(request, store_hash, "v3", "products")
    page, limit = _page_params(request, "v3", call)
    ids = PRODUCT_IDS[(page - 1) * limit : page * limit]
    modified = call.store.data.generator.customer_timeline.start
    data = [product_v3(i, modified) for i in ids]
    return call.json({"data": data, "meta": _pagination(len(PRODUCT_IDS), len(data), page, limit)})


@router.get("/v3/themes")
async def list_themes(request: Request, store_hash: str) -> Response:
    call = authorize(request, store_hash, "v3", "themes")
    theme = {
        "uuid": "2e5f1b8c-0000-4000-8000-000000000001",
        "variations": [],
        "name": "Cornerstone",
        "is_private": False,
        "is_active": True,
    }
    return call.json({"data": [theme], "meta": {}})


@router.get("/v2/pages")
async def list_pages(request: Request, store_hash: str) -> Response:
    call = authorize(request, store_hash, "v2", "content")
    pages = [
        {
            "id": 1,
            "channel_id": 1,
            "name": "Shipping & Returns",
            "type": "page",
            "is_visible": True,
            "url": "/shipping-returns/",
        },
        {
            "id": 2,
            "channel_id": 1,
            "name": "Contact Us",
            "type": "contact_form",
            "is_visible": True,
            "url": "/contact-us/",
        },
    ]
    page, limit = _page_params(request, "v2", call)
    rows = pages[(page - 1) * limit : page * limit]
    return call.json(rows) if rows else call.no_content()


# --- hooks ----------------------------------------------------------------------------------


def _hook_resource(scope: str) -> str:
    return "customers" if scope.startswith("store/customer/") else "orders"


def _own_hooks(call: Call) -> dict[int, Hook]:
    """Hooks belong to the API account (client id) that created them; others can't see them."""
    client_id = call.account.client_id
    return {k: h for k, h in call.store.hooks.items() if h.client_id == client_id}


@router.get("/v3/hooks")
async def list_hooks(request: Request, store_hash: str) -> Response:
    call = authorize(request, store_hash, "v3", None)  # needs a valid token, no scope
    hooks = [h.as_json() for h in _own_hooks(call).values()]
    return call.json({"data": hooks, "meta": _pagination(len(hooks), len(hooks), 1, 250)})


@router.post("/v3/hooks")
async def create_hook(request: Request, store_hash: str) -> Response:
    call = authorize(request, store_hash, "v3", None)
    try:
        body = await request.json()
    except ValueError as error:
        raise call.fail("v3", 400, "Request body is not valid JSON") from error
    scope, destination = body.get("scope"), body.get("destination")
    if scope not in HOOK_SCOPES:
        raise call.fail("v3", 422, f"scope must be one of {', '.join(HOOK_SCOPES)}")
    if not isinstance(destination, str) or not destination.startswith(("http://", "https://")):
        raise call.fail("v3", 422, "destination must be an absolute URL")
    if not call.account.can_read(_hook_resource(scope)):
        raise call.fail("v3", 403, MISSING_SCOPE)
    now = int(call.state.clock.now())
    store = call.store
    hook = Hook(
        id=store.next_hook_id,
        scope=scope,
        destination=destination,
        headers={str(k): str(v) for k, v in (body.get("headers") or {}).items()},
        is_active=bool(body.get("is_active", True)),
        client_id=call.account.client_id,
        store_hash=store.store_hash,
        created_at=now,
        updated_at=now,
        events_history_enabled=bool(body.get("events_history_enabled", False)),
    )
    store.hooks[hook.id] = hook
    store.next_hook_id += 1
    return call.json({"data": hook.as_json(), "meta": {}})


@router.delete("/v3/hooks/{hook_id}")
async def delete_hook(request: Request, store_hash: str, hook_id: int) -> Response:
    call = authorize(request, store_hash, "v3", None)
    if hook_id not in _own_hooks(call):
        raise call.fail("v3", 404, "Hook not found")
    hook = call.store.hooks.pop(hook_id)
    return call.json({"data": hook.as_json(), "meta": {}})


def fire_hooks(
    state: SandboxState, store: BigCommerceStore, scope: str, kind: str, record_id: int
) -> int:
    """POST the ids-only payload to every active matching hook; returns how many."""
    sent = 0
    live = state.live_client_ids()  # hooks die with their API account
    for hook in list(store.hooks.values()):
        if not (hook.is_active and hook.matches(scope) and hook.client_id in live):
            continue
        payload: dict[str, Any] = {
            "scope": scope,
            "store_id": store.store_id,
            "data": {"type": kind, "id": record_id},
            "hash": "",
            "created_at": int(state.clock.now()),
            "producer": f"stores/{store.store_hash}",
        }
        payload["hash"] = hashlib.sha1(  # noqa: S324 - mirrors the platform's payload hash field
            json.dumps(payload["data"], sort_keys=True).encode()
        ).hexdigest()
        body = json.dumps(payload)
        headers = {**hook.headers, "Content-Type": "application/json"}
        state.dispatcher.send(
            Delivery(
                id=f"bc-{hook.id}-{record_id}-{payload['created_at']}-{sent}",
                platform="bigcommerce",
                topic=scope,
                url=hook.destination,
                headers=headers,
                body=body,
            )
        )
        sent += 1
    return sent
