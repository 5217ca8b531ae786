"""Applying recorded BigCommerce hooks: fetch each named record, then hash and store it.

Hooks carry ids only, so the work (one or two API calls per record) happens in a job,
after the hook was answered. Deliveries are marked processed in the same transaction as
the records they brought, so a killed job redoes only what was not committed.
"""

from __future__ import annotations

import uuid
from typing import Any

from athos_identity.connectors import repository as connectors_repository
from athos_identity.connectors.bigcommerce.access import connector_client
from athos_identity.connectors.bigcommerce.client import BigCommerceClient
from athos_identity.connectors.bigcommerce.source import (
    customer_record,
    embedded_lines,
    order_record,
)
from athos_identity.connectors.models import WebhookDelivery
from athos_identity.db import tenant_transaction
from athos_identity.identity import repository as identity
from athos_identity.identity.records import hash_customer
from athos_identity.identity.service import hasher_for
from athos_identity.sales import repository as sales
from athos_identity.sales.records import hash_order
from athos_identity.tenants.repository import get_tenant


async def apply_pending(tenant_id: uuid.UUID, connector_id: uuid.UUID) -> int:
    """Apply every pending delivery of the connector; returns how many were applied."""
    async with tenant_transaction(tenant_id) as session:
        pending = await connectors_repository.pending_deliveries(session, tenant_id, connector_id)
        connector = await connectors_repository.get_connector(session, tenant_id, connector_id)
        tenant = await get_tenant(session, tenant_id)
        session.expunge_all()
    if not pending or connector is None:
        return 0
    region = connector.store_country or (tenant.default_region if tenant else None)
    async with connector_client(tenant_id, connector_id) as client:
        for delivery in pending:
            await _apply(client, tenant_id, connector_id, delivery, region)
    return len(pending)


async def _apply(
    client: BigCommerceClient,
    tenant_id: uuid.UUID,
    connector_id: uuid.UUID,
    delivery: WebhookDelivery,
    region: str | None,
) -> None:
    resource_id = delivery.resource_id or ""
    deleted = delivery.topic.endswith(("/deleted", "/archived"))
    record: Any = None
    if not deleted and resource_id.isdigit():
        record = await _fetch(client, delivery.topic, int(resource_id))
    hasher = hasher_for(tenant_id)
    async with tenant_transaction(tenant_id) as session:
        if delivery.topic.startswith("store/customer/") and resource_id:
            if record is None:
                await identity.delete_customers(session, tenant_id, connector_id, [resource_id])
            else:
                customer = hash_customer(customer_record(record, region), hasher)
                await identity.replace_customer_links(session, tenant_id, connector_id, [customer])
                await identity.mark_customers_seen(
                    session, tenant_id, connector_id, [customer.customer_id], None
                )
        elif delivery.topic.startswith("store/order/") and resource_id:
            if record is None:
                await sales.delete_orders(session, tenant_id, connector_id, [resource_id])
            else:
                order, lines = record
                hashed = hash_order(order_record(order, lines, region), hasher)
                await sales.upsert_orders(session, tenant_id, connector_id, [hashed])
        await connectors_repository.mark_delivery_processed(
            session, tenant_id, connector_id, delivery.delivery_key
        )


async def _fetch(client: BigCommerceClient, topic: str, resource_id: int) -> Any:
    """The record as it is now, or None when it is gone (deleted since the hook)."""
    if topic.startswith("store/customer/"):
        body = await client.get("/v3/customers", **{"id:in": resource_id, "include": "addresses"})
        found = (body or {}).get("data") or []
        return found[0] if found else None
    order = await client.get_or_none(f"/v2/orders/{resource_id}", include="consignments.line_items")
    if not order:
        return None
    lines, truncated = embedded_lines(order)
    if truncated or not lines:
        lines = await client.order_products(resource_id)
    return order, lines
