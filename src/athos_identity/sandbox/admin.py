"""The sandbox's own endpoints under /sandbox/…: state, faults, clock, accounts, data changes.

Data changes made here fire the platform's notifications (BigCommerce hooks, Shopify
webhooks), so the service's webhook handling can be exercised end to end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response

from athos_identity.sandbox.bigcommerce.routes import fire_hooks
from athos_identity.sandbox.bigcommerce.store import KNOWN_SCOPES
from athos_identity.sandbox.config import BIGCOMMERCE_QUOTAS, SHOPIFY_RESTORE_RATES
from athos_identity.sandbox.data import Customer, Order, StoreData
from athos_identity.sandbox.expected import expected_answers
from athos_identity.sandbox.faults import FaultSpecError
from athos_identity.sandbox.state import SandboxError, SandboxState

router = APIRouter(prefix="/sandbox")

EXPECTED_ANSWERS_MAX_RECORDS = 200_000
JsonBody = dict[str, Any]


def sandbox(request: Request) -> SandboxState:
    return request.app.state.sandbox


def base_url(request: Request) -> str:
    state = sandbox(request)
    return (state.config.public_url or str(request.base_url)).rstrip("/")


@router.get("/state")
async def get_state(request: Request) -> JSONResponse:
    return JSONResponse(sandbox(request).document(base_url(request)))


# --- faults and clock -----------------------------------------------------------------------


@router.get("/faults")
async def list_faults(request: Request) -> JSONResponse:
    return JSONResponse({"faults": sandbox(request).faults.as_json()})


@router.post("/faults")
async def add_fault(request: Request, body: JsonBody = Body(...)) -> JSONResponse:
    try:
        fault = sandbox(request).faults.add(body)
    except FaultSpecError as error:
        raise SandboxError(422, str(error)) from error
    return JSONResponse(fault.as_json(), status_code=201)


@router.delete("/faults")
async def clear_faults(request: Request, platform: str | None = None) -> JSONResponse:
    return JSONResponse({"removed": sandbox(request).faults.clear(platform)})


@router.delete("/faults/{fault_id}")
async def remove_fault(request: Request, fault_id: int) -> Response:
    if not sandbox(request).faults.remove(fault_id):
        raise SandboxError(404, f"no fault {fault_id}")
    return Response(status_code=204)


@router.post("/clock")
async def set_clock(request: Request, body: JsonBody = Body(...)) -> JSONResponse:
    state = sandbox(request)
    try:
        state.clock.set_factor(float(body["time_factor"]))
    except (KeyError, TypeError, ValueError) as error:
        raise SandboxError(422, "time_factor must be a positive number") from error
    return JSONResponse({"time_factor": state.clock.factor, "now": state.clock.now()})


@router.get("/deliveries")
async def list_deliveries(request: Request) -> JSONResponse:
    return JSONResponse({"deliveries": [d.as_json() for d in sandbox(request).dispatcher.log]})


# --- BigCommerce stores and accounts --------------------------------------------------------


@router.post("/bigcommerce/accounts")
async def create_account(request: Request, body: JsonBody = Body(...)) -> JSONResponse:
    scopes = body.get("scopes", [])
    unknown = sorted(set(scopes) - KNOWN_SCOPES) if isinstance(scopes, list) else ["?"]
    if unknown:
        raise SandboxError(422, f"unknown scopes {unknown}; known: {sorted(KNOWN_SCOPES)}")
    state = sandbox(request)
    account = state.add_account(
        str(body.get("store_hash", "")), scopes, name=str(body.get("name", "sandbox account"))
    )
    store_hash = account.store_hash
    return JSONResponse(
        {
            **account.as_json(),
            "api_path": f"{base_url(request)}/bigcommerce/stores/{store_hash}/v3/",
        },
        status_code=201,
    )


@router.delete("/bigcommerce/accounts/{client_id}")
async def delete_account(request: Request, client_id: str) -> Response:
    """Delete an API account (by client id, so no token travels in a URL): its token answers
    401 from now on and the hooks it registered are gone."""
    sandbox(request).delete_account(client_id)
    return Response(status_code=204)


def _store_options(body: JsonBody) -> dict[str, Any]:
    options = {k: body[k] for k in ("customers", "orders", "seed", "country", "plan") if k in body}
    for numeric in ("customers", "orders", "seed"):
        if numeric in options:
            options[numeric] = int(options[numeric])
    return options


@router.post("/bigcommerce/stores")
async def create_store(request: Request, body: JsonBody = Body(...)) -> JSONResponse:
    state = sandbox(request)
    options = _store_options(body)
    if options.get("plan") not in (None, *BIGCOMMERCE_QUOTAS):
        raise SandboxError(422, f"plan must be one of {sorted(BIGCOMMERCE_QUOTAS)}")
    store = state.add_store(str(body.get("store_hash", "")), **options)
    return JSONResponse(state._store_json(store, base_url(request)), status_code=201)


@router.patch("/bigcommerce/stores/{store_hash}")
async def update_store(
    request: Request, store_hash: str, body: JsonBody = Body(...)
) -> JSONResponse:
    state = sandbox(request)
    store = state.store(store_hash)
    if "plan" in body:
        if body["plan"] not in BIGCOMMERCE_QUOTAS:
            raise SandboxError(422, f"plan must be one of {sorted(BIGCOMMERCE_QUOTAS)}")
        store.set_plan(body["plan"])
    return JSONResponse(state._store_json(store, base_url(request)))


# --- Shopify shops --------------------------------------------------------------------------


@router.post("/shopify/shops")
async def create_shop(request: Request, body: JsonBody = Body(...)) -> JSONResponse:
    state = sandbox(request)
    options = _store_options(body)
    if options.get("plan") not in (None, *SHOPIFY_RESTORE_RATES):
        raise SandboxError(422, f"plan must be one of {sorted(SHOPIFY_RESTORE_RATES)}")
    shop = state.add_shop(str(body.get("shop", "")), **options)
    if "withhold_scopes" in body:
        shop.withheld_scopes = frozenset(body["withhold_scopes"])
    return JSONResponse(state._shop_json(shop, base_url(request)), status_code=201)


@router.patch("/shopify/shops/{shop_domain}")
async def update_shop(
    request: Request, shop_domain: str, body: JsonBody = Body(...)
) -> JSONResponse:
    state = sandbox(request)
    shop = state.shop(shop_domain)
    if "plan" in body:
        if body["plan"] not in SHOPIFY_RESTORE_RATES:
            raise SandboxError(422, f"plan must be one of {sorted(SHOPIFY_RESTORE_RATES)}")
        shop.set_plan(body["plan"])
    if "withhold_scopes" in body:
        shop.withheld_scopes = frozenset(body["withhold_scopes"] or ())
    if "required_scopes_revocable" in body:
        shop.required_scopes_revocable = bool(body["required_scopes_revocable"])
    return JSONResponse(state._shop_json(shop, base_url(request)))


@router.post("/shopify/shops/{shop_domain}/uninstall")
async def uninstall_shopify_app(request: Request, shop_domain: str) -> JSONResponse:
    from athos_identity.sandbox.shopify.webhooks import uninstall_app

    state = sandbox(request)
    sent = uninstall_app(state, state.shop(shop_domain))
    return JSONResponse({"uninstalled": shop_domain, "webhooks_sent": sent})


@router.post("/shopify/shops/{shop_domain}/compliance")
async def send_compliance_webhook(
    request: Request, shop_domain: str, body: JsonBody = Body(...)
) -> JSONResponse:
    """Send one mandatory compliance topic, signed, to ``url`` (as set in the app config)."""
    from athos_identity.sandbox.shopify.webhooks import (
        COMPLIANCE_TOPICS,
        compliance_payload,
        send_signed,
    )

    state = sandbox(request)
    shop = state.shop(shop_domain)
    topic, url = body.get("topic"), body.get("url")
    if topic not in COMPLIANCE_TOPICS:
        raise SandboxError(422, f"topic must be one of {COMPLIANCE_TOPICS}")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise SandboxError(422, "url must be an absolute http(s) URL")
    customer_id = body.get("customer_id")
    try:
        payload = compliance_payload(
            state,
            shop,
            topic,
            int(customer_id) if customer_id is not None else None,
            body.get("order_ids"),
        )
    except LookupError as error:
        raise SandboxError(404, str(error)) from error
    delivery = send_signed(state, shop, topic, url, payload)
    return JSONResponse({"webhook_id": delivery.id, "payload": payload}, status_code=202)


# --- data changes (both platforms) ----------------------------------------------------------

Notify = Callable[[SandboxState, str, str, str, Customer | Order | int], None]


def _bigcommerce_notify(
    state: SandboxState, store_hash: str, kind: str, action: str, record: Customer | Order | int
) -> None:
    record_id = record if isinstance(record, int) else record.id
    scope = {
        "created": "created",
        "updated": "updated",
        "deleted": "deleted" if kind == "customer" else "archived",
    }[action]
    fire_hooks(state, state.store(store_hash), f"store/{kind}/{scope}", kind, record_id)


def _shopify_notify(
    state: SandboxState, shop_domain: str, kind: str, action: str, record: Customer | Order | int
) -> None:
    from athos_identity.sandbox.shopify.webhooks import notify_record_change

    notify_record_change(state, state.shop(shop_domain), kind, action, record)


def _data(state: SandboxState, platform: str, name: str) -> StoreData:
    return state.store(name).data if platform == "bigcommerce" else state.shop(name).data


def _record_json(record: Customer | Order) -> JsonBody:
    if isinstance(record, Customer):
        return {
            "id": record.id,
            "email": record.email,
            "phone": record.phone,
            "address_phone": record.address_phone,
            "first_name": record.first_name,
            "last_name": record.last_name,
            "created_at": record.created_at,
            "updated_at": record.updated_at,
        }
    return {
        "id": record.id,
        "customer_id": record.customer_id,
        "email": record.email,
        "phone": record.phone,
        "line_count": len(record.lines),
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


def _add_data_routes(platform: str, container: str, notify: Notify) -> None:
    prefix = f"/{platform}/{container}/{{name}}"

    @router.post(prefix + "/{kind}", name=f"{platform}_create_record")
    async def create_record(
        request: Request, name: str, kind: str, body: JsonBody = Body(default_factory=dict)
    ) -> JSONResponse:
        state = sandbox(request)
        data = _data(state, platform, name)
        now = int(state.clock.now())
        if kind == "customers":
            record: Customer | Order = data.create_customer(now, **body)
        elif kind == "orders":
            record = data.create_order(now, **body)
        else:
            raise SandboxError(404, "kind must be customers or orders")
        notify(state, name, kind[:-1], "created", record)
        return JSONResponse(_record_json(record), status_code=201)

    @router.patch(prefix + "/{kind}/{record_id}", name=f"{platform}_update_record")
    async def update_record(
        request: Request,
        name: str,
        kind: str,
        record_id: int,
        body: JsonBody = Body(default_factory=dict),
    ) -> JSONResponse:
        state = sandbox(request)
        data = _data(state, platform, name)
        now = int(state.clock.now())
        if kind == "customers":
            record: Customer | Order | None = data.update_customer(record_id, now, **body)
        elif kind == "orders":
            record = data.update_order(record_id, now, **body)
        else:
            raise SandboxError(404, "kind must be customers or orders")
        if record is None:
            raise SandboxError(404, f"no {kind[:-1]} {record_id}")
        notify(state, name, kind[:-1], "updated", record)
        return JSONResponse(_record_json(record))

    @router.delete(prefix + "/{kind}/{record_id}", name=f"{platform}_delete_record")
    async def delete_record(request: Request, name: str, kind: str, record_id: int) -> Response:
        state = sandbox(request)
        data = _data(state, platform, name)
        if kind not in ("customers", "orders"):
            raise SandboxError(404, "kind must be customers or orders")
        records = data.customers if kind == "customers" else data.orders
        if not records.delete(record_id):
            raise SandboxError(404, f"no {kind[:-1]} {record_id}")
        notify(state, name, kind[:-1], "deleted", record_id)
        return Response(status_code=204)

    @router.get(prefix + "/expected", name=f"{platform}_expected")
    async def expected(request: Request, name: str) -> JSONResponse:
        data = _data(sandbox(request), platform, name)
        size = data.customers.count() + data.orders.count()
        if size > EXPECTED_ANSWERS_MAX_RECORDS:
            raise SandboxError(
                413,
                "store too large for known answers over HTTP; use "
                "athos_identity.sandbox.expected in-process",
            )
        return JSONResponse(expected_answers(data).as_json())


_add_data_routes("bigcommerce", "stores", _bigcommerce_notify)
_add_data_routes("shopify", "shops", _shopify_notify)
