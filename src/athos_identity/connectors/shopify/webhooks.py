"""Receiving Shopify webhooks: verify, deduplicate, route by topic.

- Verification: `shopify_app.verify_webhook_req` (Shopify's package) checks
  X-Shopify-Hmac-Sha256 = base64 HMAC-SHA256 of the raw body, in constant time, with the
  current and the previous client secret (rotation). Any failure, a missing header
  included, answers 401 and touches nothing.
- Routing: the shop comes from X-Shopify-Shop-Domain (for the compliance topics it must
  equal the signed body's `shop_domain`). Every tenant's connector of that shop gets the
  event, each in its own tenant-scoped transaction.
- Deduplication: X-Shopify-Webhook-Id, recorded in `webhook_deliveries` in the same
  transaction as the event's effect (or, for a queued event, before its job is queued):
  a retried delivery changes nothing.
- Where the work happens (Shopify wants an answer within 5 s). The payloads carry raw
  e-mails and phones, which never go into a job's arguments nor the database, so:
  * per-record topics are done in the request, because they are cheap and bounded by one
    record: customers/create|update (hash e-mail and phones, replace the customer's links,
    record its `customers` row as a pull does, so a later full sync sweeps it),
    customers/delete (drop its links and row), orders/create|updated (the body is the
    whole order: hashed and stored as sales data), orders/delete, and the per-customer
    compliance topics customers/data_request and customers/redact (`compliance.py`);
  * whole-shop topics, app/uninstalled (revoke without calling Shopify) and shop/redact,
    purge everything of the shop, for every tenant that has it: unbounded work. The
    request records the delivery (ids only: the payload is not kept), answers
    `queued`, and the job `shopify.apply_shop_events(tenant_id, connector_id)` does the
    purge in one transaction, retried on any failure, then marks the delivery processed.
    The job is queued before the answer: if queueing fails, Shopify gets a 500 and
    retries, and a retried delivery still pending queues it again.
  Other topics: 200, ignored, logged by topic.

This module commits its own transactions (no API key: nothing scopes a request session).
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from shopify_app import verify_webhook_req
from sqlalchemy.ext.asyncio import AsyncSession

from athos_identity import db
from athos_identity.connectors import repository as connector_repository
from athos_identity.connectors.models import Connector, ConnectorState, WebhookDelivery
from athos_identity.connectors.shopify import compliance, oauth, repository, service
from athos_identity.connectors.shopify.client import app_credentials, app_secrets
from athos_identity.connectors.shopify.mapping import iso
from athos_identity.connectors.shopify.tasks import queue_shop_events
from athos_identity.identity import repository as identity_repository
from athos_identity.identity.records import CustomerRecord, hash_customer
from athos_identity.identity.service import hasher_for
from athos_identity.kit.errors import BadRequest, PayloadTooLarge, Unauthorized
from athos_identity.sales import repository as sales_repository
from athos_identity.sales.records import OrderLine, OrderRecord, hash_order
from athos_identity.settings import get_settings

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 2 * 1024 * 1024
CUSTOMER_TOPICS = ("customers/create", "customers/update")
ORDER_TOPICS = ("orders/create", "orders/updated", "orders/delete")
UNINSTALLED = "app/uninstalled"
# Purges of the whole shop: done in a job (see the module's docstring).
SHOP_EVENTS = (UNINSTALLED, compliance.SHOP_REDACT)
KNOWN_TOPICS = (*CUSTOMER_TOPICS, "customers/delete", *ORDER_TOPICS, UNINSTALLED,
                *compliance.TOPICS)  # fmt: skip


@dataclass
class Received:
    status: str  # processed | queued (a job does the work) | duplicate | ignored
    topic: str | None = None
    connectors: int = 0
    outcomes: list[str] = field(default_factory=list)


def _unauthorized() -> Unauthorized:
    error = Unauthorized("The webhook signature (X-Shopify-Hmac-Sha256) is missing or wrong.")
    error.headers = None  # not a Bearer challenge
    return error


def verify(headers: dict[str, str], body: bytes, url: str) -> None:
    """401 unless the body is signed with the current or the previous client secret."""
    secrets = app_secrets()
    if not secrets:
        app_credentials()  # raises "not configured"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _unauthorized() from None
    client_id = get_settings().shopify_client_id
    result = verify_webhook_req(
        {"method": "POST", "headers": headers, "url": url, "body": text},
        {
            "client_id": client_id or "",
            "client_secret": secrets[0],
            "old_client_secret": secrets[1] if len(secrets) > 1 else None,
        },
    )
    if not result.ok:
        log.warning("Shopify webhook refused: %s", result.log.code)
        raise _unauthorized()


def _parse(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except ValueError:
        raise BadRequest("The webhook body is not JSON.") from None
    if not isinstance(payload, dict):
        raise BadRequest("The webhook body is not a JSON object.")
    return payload


async def receive(headers: dict[str, str], body: bytes, url: str) -> Received:
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge("The webhook body is larger than Shopify sends.")
    lowered = {k.lower(): v for k, v in headers.items()}
    verify(lowered, body, url)
    topic = lowered.get("x-shopify-topic", "").strip().lower()
    shop = lowered.get("x-shopify-shop-domain", "").strip().lower()
    webhook_id = lowered.get("x-shopify-webhook-id", "").strip()
    if not topic or not webhook_id or not oauth.is_valid_shop(shop):
        raise BadRequest(
            "A Shopify webhook needs X-Shopify-Topic, X-Shopify-Webhook-Id and a "
            "myshopify.com X-Shopify-Shop-Domain."
        )
    if topic not in KNOWN_TOPICS:
        log.info("Shopify webhook %s from %s ignored (topic not handled)", topic, shop)
        return Received("ignored", topic)
    payload = _parse(body)
    if topic in compliance.TOPICS and str(payload.get("shop_domain", "")).lower() != shop:
        raise BadRequest("The body's shop_domain differs from X-Shopify-Shop-Domain.")

    async with db.transaction() as session:
        targets = await repository.connectors_of_shop(session, shop)
    if not targets:
        log.info("Shopify webhook %s for %s: no connector of that shop", topic, shop)
        return Received("ignored", topic)
    outcomes: list[str] = []
    for target in targets:
        async with db.tenant_transaction(target.tenant_id) as session:
            connector = await connector_repository.get_connector(
                session, target.tenant_id, target.connector_id
            )
            if connector is None:
                continue
            outcome, needs_job = await _deliver(session, connector, topic, webhook_id, payload)
        # After the commit: the job must find the delivery.
        if needs_job:
            await queue_shop_events(target.tenant_id, target.connector_id)
        outcomes.append(outcome)
    log.info("Shopify webhook %s for %s: %s", topic, shop, ",".join(outcomes) or "none")
    return Received(_overall(outcomes), topic, len(targets), outcomes)


def _overall(outcomes: list[str]) -> str:
    if outcomes and all(o == "duplicate" for o in outcomes):
        return "duplicate"
    for status in ("processed", "queued"):
        if status in outcomes:
            return status
    return "ignored"


def _resource(topic: str, payload: dict[str, Any]) -> tuple[str | None, str | None]:
    kind = {"customers": "customer", "orders": "order", "app": "shop", "shop": "shop"}.get(
        topic.split("/", 1)[0]
    )
    if topic in compliance.TOPICS and topic != compliance.SHOP_REDACT:
        customer = payload.get("customer")
        raw = customer.get("id") if isinstance(customer, dict) else None
        return "customer", compliance._id(raw)
    if topic == compliance.SHOP_REDACT:
        return kind, compliance._id(payload.get("shop_id"))
    return kind, compliance._id(payload.get("id"))


async def _deliver(
    session: AsyncSession,
    connector: Connector,
    topic: str,
    webhook_id: str,
    payload: dict[str, Any],
) -> tuple[str, bool]:
    """Record the delivery once and do (or leave to a job) its work: (outcome, queue a job)."""
    delivery_key = webhook_id[:300]
    is_compliance = topic in compliance.TOPICS
    active = connector.state in (ConnectorState.granted, ConnectorState.needs_reauthorization)
    if not is_compliance and topic != UNINSTALLED and not active:
        return "ignored", False
    resource_type, resource_id = _resource(topic, payload)
    recorded = await connector_repository.record_delivery(
        session,
        WebhookDelivery(
            tenant_id=connector.tenant_id,
            connector_id=connector.id,
            delivery_key=delivery_key,
            topic=topic,
            resource_type=resource_type,
            resource_id=resource_id,
        ),
    )
    if not recorded:
        # A retry of a queued event whose job may never have been queued: queue it again.
        requeue = topic in SHOP_EVENTS and await repository.is_delivery_pending(
            session, connector.tenant_id, connector.id, delivery_key
        )
        return "duplicate", requeue
    if topic in SHOP_EVENTS:
        return "queued", True
    if is_compliance:
        await compliance.handle_customer_request(session, connector, topic, webhook_id, payload)
    elif topic in CUSTOMER_TOPICS:
        await _upsert_customer(session, connector, payload)
    elif topic == "customers/delete":
        if resource_id is not None:
            await identity_repository.delete_customers(
                session, connector.tenant_id, connector.id, [resource_id]
            )
    elif topic == "orders/delete":
        if resource_id is not None:
            await sales_repository.delete_orders(
                session, connector.tenant_id, connector.id, [resource_id]
            )
    elif topic in ("orders/create", "orders/updated"):
        # The payload is the whole order (REST shape): hashed and stored at once, well
        # within Shopify's 5 s.
        await _upsert_order(session, connector, payload)
    await _mark_processed(session, connector, webhook_id)
    return "processed", False


async def apply_shop_events(tenant_id: uuid.UUID, connector_id: uuid.UUID) -> int:
    """The job's work: every pending app/uninstalled and shop/redact of the connector, in
    the order received, in one transaction (a failure leaves them all pending, to retry).
    Returns how many were applied."""
    async with db.tenant_transaction(tenant_id) as session:
        # The row lock serialises two jobs of one connector (one queued while one runs).
        connector = await connector_repository.get_connector(
            session, tenant_id, connector_id, for_update=True
        )
        if connector is None:
            return 0
        pending = await connector_repository.pending_deliveries(
            session, tenant_id, connector_id, topics=SHOP_EVENTS
        )
        for delivery in pending:
            session.expunge(delivery)  # the purge deletes its row; it is written back
        for delivery in pending:
            if delivery.topic == UNINSTALLED:
                await service.revoke_after_uninstall(session, connector)
            else:
                await compliance.handle_shop_redact(
                    session, connector, delivery.delivery_key, delivery.received_at
                )
            await repository.keep_delivery_processed(session, delivery)
        return len(pending)


async def _upsert_order(
    session: AsyncSession, connector: Connector, payload: dict[str, Any]
) -> None:
    order_id = compliance._id(payload.get("id"))
    if order_id is None:
        raise BadRequest("The order webhook has no id.")
    region = connector.store_country or await repository.tenant_region(session, connector.tenant_id)
    record = rest_order_record(order_id, payload, region)
    hashed = hash_order(record, hasher_for(connector.tenant_id))
    await sales_repository.upsert_orders(session, connector.tenant_id, connector.id, [hashed])


def rest_order_record(order_id: str, payload: dict[str, Any], region: str | None) -> OrderRecord:
    """An order webhook's body (Shopify's REST shape) as a neutral record."""
    customer = payload.get("customer") if isinstance(payload.get("customer"), dict) else {}
    billing = payload.get("billing_address")
    billing = billing if isinstance(billing, dict) else {}
    lines = [
        OrderLine(
            line_id=str(line["id"]),
            quantity=int(line.get("quantity") or 0),
            product_id=compliance._id(line.get("product_id")),
            variant_id=compliance._id(line.get("variant_id")),
            sku=line.get("sku") or None,
            unit_price=_decimal(line.get("price")),
        )
        for line in payload.get("line_items") or []
        if isinstance(line, dict) and line.get("id") is not None
    ]
    status = payload.get("financial_status")
    return OrderRecord(
        order_id=order_id,
        customer_id=compliance._id(customer.get("id")),
        email=_text(payload.get("email")),
        phone=_text(payload.get("phone")) or _text(billing.get("phone")),
        region=_text(billing.get("country_code")) or region,
        currency=_text(payload.get("currency")),
        total=_decimal(payload.get("total_price")),
        status=status.upper() if isinstance(status, str) else None,
        placed_at=iso(payload.get("created_at")),
        updated_at=iso(payload.get("updated_at")),
        lines=tuple(lines),
    )


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value not in (None, "") else None
    except InvalidOperation:
        return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


async def _upsert_customer(
    session: AsyncSession, connector: Connector, payload: dict[str, Any]
) -> None:
    customer_id = compliance._id(payload.get("id"))
    if customer_id is None:
        raise BadRequest("The customer webhook has no id.")
    emails = [payload.get("email")]
    phones = [payload.get("phone")]
    address = payload.get("default_address")
    if isinstance(address, dict):
        phones.append(address.get("phone"))
    region = connector.store_country or await repository.tenant_region(session, connector.tenant_id)
    record = CustomerRecord(
        customer_id=customer_id,
        emails=tuple(e for e in emails if isinstance(e, str) and e.strip()),
        phones=tuple(dict.fromkeys(p for p in phones if isinstance(p, str) and p.strip())),
        region=region,
    )
    hashed = hash_customer(record, hasher_for(connector.tenant_id))
    del record, emails, phones, payload  # the raw values go no further
    await identity_repository.replace_customer_links(
        session, connector.tenant_id, connector.id, [hashed]
    )
    # As a pull does, without a run: the next full sync sees it or sweeps it (a customer
    # gone without a customers/delete webhook must not keep its links).
    await identity_repository.mark_customers_seen(
        session, connector.tenant_id, connector.id, [customer_id], None
    )


async def _mark_processed(session: AsyncSession, connector: Connector, webhook_id: str) -> None:
    await repository.mark_delivery_processed(
        session, connector.tenant_id, connector.id, webhook_id[:300]
    )
