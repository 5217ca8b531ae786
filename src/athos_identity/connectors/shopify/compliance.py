"""Shopify's mandatory privacy topics. Never commits; ids and counts only, never PII.

- customers/data_request: record the request and what we hold for that customer, from
  every table that can hold it: its id (the `customers` row), how many hashed e-mails and
  phones link to it (never the hashes), the orders held under its id and which of the
  listed orders we hold (pulled or received by webhook alike). Retrievable through
  GET /v1/connectors/{id}/shopify/compliance-requests.
- customers/redact: erase the customer's identity links and row, the hashed e-mail/phone
  on its orders and on the listed orders (sales), and our webhook records of them. Ids
  are Shopify's numeric ids, as in the payloads (the pulls store the same).
  Both are bounded by one customer: done within the webhook's request.
- shop/redact: erase everything of that shop (the connector's data; the connector stays,
  revoked, so the console can show what happened). Unbounded: done in a job
  (webhooks.apply_shop_events), from ids only.

Payloads as documented by Shopify:
    data_request: {shop_id, shop_domain, orders_requested: [ids], customer: {id, email,
                   phone}, data_request: {id}}
    redact:       {shop_id, shop_domain, customer: {id, email, phone}, orders_to_redact}
    shop/redact:  {shop_id, shop_domain}
The e-mail and phone in them are never read.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from athos_identity.connectors import repository as connector_repository
from athos_identity.connectors import service as connectors
from athos_identity.connectors.models import Connector, ConnectorState
from athos_identity.connectors.shopify import repository
from athos_identity.connectors.shopify.models import ShopifyComplianceRequest
from athos_identity.identity import repository as identity_repository
from athos_identity.kit.errors import BadRequest
from athos_identity.sales import repository as sales_repository

log = logging.getLogger(__name__)

DATA_REQUEST = "customers/data_request"
CUSTOMER_REDACT = "customers/redact"
SHOP_REDACT = "shop/redact"
TOPICS = (DATA_REQUEST, CUSTOMER_REDACT, SHOP_REDACT)


def _id(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | str) and str(value).strip():
        return str(value).strip()[:100]
    return None


def _ids(values: Any) -> list[str]:
    if not isinstance(values, list):
        return []
    return [i for i in (_id(v) for v in values[:10_000]) if i is not None]


def _customer_id(payload: dict[str, Any]) -> str:
    customer = payload.get("customer")
    found = _id(customer.get("id")) if isinstance(customer, dict) else None
    if found is None:
        raise BadRequest("The compliance payload has no customer.id.")
    return found


def _new_request(connector: Connector, topic: str, webhook_id: str) -> ShopifyComplianceRequest:
    return ShopifyComplianceRequest(
        tenant_id=connector.tenant_id,
        id=uuid.uuid4(),
        connector_id=connector.id,
        shop=connector.store or "",
        topic=topic,
        webhook_id=webhook_id[:200],
        order_ids=[],
        result={},
    )


async def handle_customer_request(
    session: AsyncSession,
    connector: Connector,
    topic: str,
    webhook_id: str,
    payload: dict[str, Any],
) -> ShopifyComplianceRequest:
    """customers/data_request or customers/redact, within the webhook's request: the work
    is a few statements bounded by one customer and its listed orders."""
    request = _new_request(connector, topic, webhook_id)
    customer_id = _customer_id(payload)
    request.customer_id = customer_id
    if topic == DATA_REQUEST:
        data_request = payload.get("data_request")
        request.shopify_request_id = (
            _id(data_request.get("id")) if isinstance(data_request, dict) else None
        )
        request.order_ids = _ids(payload.get("orders_requested"))
        request.result = await data_held(session, connector, customer_id, request.order_ids)
    elif topic == CUSTOMER_REDACT:
        request.order_ids = _ids(payload.get("orders_to_redact"))
        request.result = await redact_customer(
            session, connector, customer_id, request.order_ids, webhook_id
        )
    else:  # pragma: no cover - the caller routes only these topics
        raise ValueError(topic)
    return await _complete(session, request)


async def handle_shop_redact(
    session: AsyncSession, connector: Connector, webhook_id: str, received_at: datetime
) -> ShopifyComplianceRequest:
    """shop/redact, in a job (webhooks.apply_shop_events): the whole shop's data goes."""
    request = _new_request(connector, SHOP_REDACT, webhook_id)
    request.received_at = received_at
    request.result = await redact_shop(session, connector)
    return await _complete(session, request)


async def _complete(
    session: AsyncSession, request: ShopifyComplianceRequest
) -> ShopifyComplianceRequest:
    request.completed_at = datetime.now(UTC)
    saved = await repository.add_compliance_request(session, request)
    log.info("connector %s: %s handled (request %s)", saved.connector_id, saved.topic, saved.id)
    return saved


async def data_held(
    session: AsyncSession, connector: Connector, customer_id: str, order_ids: list[str]
) -> dict[str, Any]:
    """What we hold for the customer, from every table that can hold it: its row, its
    identity links (counted, never the hashes), the orders placed under its id and the
    listed orders (pulled or received by webhook alike)."""
    tenant_id, connector_id = connector.tenant_id, connector.id
    counts = await repository.link_counts_of_customer(session, tenant_id, connector_id, customer_id)
    has_row = await repository.holds_customer_row(session, tenant_id, connector_id, customer_id)
    orders = await sales_repository.orders_held_of_customer(
        session, tenant_id, connector_id, customer_id, order_ids
    )
    own_orders = [order_id for order_id, own, _ in orders if own]
    listed = set(order_ids)
    holds = has_row or counts["email"] + counts["phone"] > 0 or bool(own_orders)
    return {
        "customer_id": customer_id,
        "customer_ids": [customer_id] if holds else [],
        "holds_customer": holds,
        "hashed_emails": counts["email"],
        "hashed_phones": counts["phone"],
        "identity_links": counts["email"] + counts["phone"],
        "orders_of_customer": len(own_orders),
        "orders_requested_held": [order_id for order_id, _, _ in orders if order_id in listed],
        "orders_held": [order_id for order_id, _, _ in orders],
        "orders_with_hashed_identifiers": sum(1 for _, _, hashed in orders if hashed),
        "raw_personal_data": False,
        "note": "Only keyed one-way hashes of e-mail addresses and phone numbers are kept, "
        "linked to the customer id, and the orders' ids, amounts and lines; no name, "
        "address, e-mail or phone in clear.",
    }


async def redact_customer(
    session: AsyncSession,
    connector: Connector,
    customer_id: str,
    order_ids: list[str],
    webhook_id: str = "",
) -> dict[str, Any]:
    tenant_id, connector_id = connector.tenant_id, connector.id
    links = await identity_repository.delete_links_of_customer(
        session, tenant_id, customer_id, connector_id
    )
    # Its row too: a customer known by id only would still be reported by a data request.
    await identity_repository.delete_customers(session, tenant_id, connector_id, [customer_id])
    customer_hooks = await repository.delete_deliveries_of(
        session, tenant_id, connector_id, "customer", [customer_id], keep_key=webhook_id[:300]
    )
    order_hooks = await repository.delete_deliveries_of(
        session, tenant_id, connector_id, "order", order_ids
    )
    orders = await sales_repository.forget_customer_identifiers(
        session, tenant_id, customer_id, connector_id, order_ids
    )
    return {
        "customer_id": customer_id,
        "identity_links_deleted": links,
        "orders_identifiers_erased": orders,
        "webhook_records_deleted": customer_hooks + order_hooks,
        "orders_redacted": order_ids,
    }


async def redact_shop(session: AsyncSession, connector: Connector) -> dict[str, Any]:
    locked = await connectors.get_connector(
        session, connector.tenant_id, connector.id, for_update=True
    )
    purged = await connector_repository.purge_connector_data(session, locked.tenant_id, locked.id)
    locked.state = ConnectorState.revoked.value
    locked.scopes = []
    locked.warnings = []
    locked.webhook_secret_hash = None
    locked.last_error = "Shopify asked to erase this shop's data (shop/redact); erased."
    await connector_repository.touch(session, locked)
    return {"purged": purged}
