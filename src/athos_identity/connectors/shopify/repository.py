"""All SQL of the Shopify connector: OAuth states, compliance requests, webhook routing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from athos_identity.connectors.models import Connector, WebhookDelivery
from athos_identity.connectors.shopify.models import ShopifyComplianceRequest, ShopifyOAuthState

# --- OAuth states ---------------------------------------------------------------------------


async def add_state(session: AsyncSession, state: ShopifyOAuthState) -> None:
    session.add(state)
    await session.flush()


async def consume_state(
    session: AsyncSession, tenant_id: uuid.UUID, state_hash: bytes
) -> ShopifyOAuthState | None:
    """Mark an unused, unexpired state used, in one statement; None if it was not."""
    result = await session.execute(
        update(ShopifyOAuthState)
        .where(
            ShopifyOAuthState.tenant_id == tenant_id,
            ShopifyOAuthState.state_hash == state_hash,
            ShopifyOAuthState.used_at.is_(None),
            ShopifyOAuthState.expires_at > text("now()"),
        )
        .values(used_at=text("now()"))
        .returning(ShopifyOAuthState)
        .execution_options(synchronize_session=False)
    )
    return result.scalar_one_or_none()


async def get_state(
    session: AsyncSession, tenant_id: uuid.UUID, state_hash: bytes
) -> ShopifyOAuthState | None:
    result = await session.execute(
        select(ShopifyOAuthState).where(
            ShopifyOAuthState.tenant_id == tenant_id,
            ShopifyOAuthState.state_hash == state_hash,
        )
    )
    return result.scalar_one_or_none()


async def delete_expired_states(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    await session.execute(
        text(
            "DELETE FROM shopify_oauth_states WHERE tenant_id = :tenant_id"
            " AND expires_at < now() - interval '1 day'"
        ),
        {"tenant_id": tenant_id},
    )


# --- webhook routing ------------------------------------------------------------------------


@dataclass(frozen=True)
class ShopConnector:
    tenant_id: uuid.UUID
    connector_id: uuid.UUID


async def connectors_of_shop(session: AsyncSession, shop: str) -> list[ShopConnector]:
    """Every tenant's Shopify connector of one shop (the `shopify_webhook_routing` policy
    shows these rows, and only these, once app.shopify_shop names the shop)."""
    await session.execute(
        text("SELECT set_config('app.shopify_shop', :shop, true)"), {"shop": shop}
    )
    result = await session.execute(
        select(Connector.tenant_id, Connector.id).where(
            Connector.platform == "shopify", Connector.store == shop
        )
    )
    found = [ShopConnector(row.tenant_id, row.id) for row in result]
    await session.execute(text("SELECT set_config('app.shopify_shop', '', true)"))
    return found


async def tenant_region(session: AsyncSession, tenant_id: uuid.UUID) -> str | None:
    result = await session.execute(
        text("SELECT default_region FROM tenants WHERE tenant_id = :tenant_id"),
        {"tenant_id": tenant_id},
    )
    return result.scalar_one_or_none()


# --- identity facts for compliance ----------------------------------------------------------


async def link_counts_of_customer(
    session: AsyncSession, tenant_id: uuid.UUID, connector_id: uuid.UUID, customer_id: str
) -> dict[str, int]:
    """How many hashed e-mails and phones link to the customer (never the hashes)."""
    result = await session.execute(
        text(
            "SELECT kind, count(*) FROM identity_links WHERE tenant_id = :tenant_id"
            " AND connector_id = :connector_id AND customer_id = :customer_id GROUP BY kind"
        ),
        {"tenant_id": tenant_id, "connector_id": connector_id, "customer_id": customer_id},
    )
    counts = {int(kind): int(count) for kind, count in result.all()}
    return {"email": int(counts.get(1, 0)), "phone": int(counts.get(2, 0))}


async def holds_customer_row(
    session: AsyncSession, tenant_id: uuid.UUID, connector_id: uuid.UUID, customer_id: str
) -> bool:
    """Whether the connector's `customers` table knows the id (pulls and webhooks write it)."""
    result = await session.execute(
        text(
            "SELECT EXISTS (SELECT 1 FROM customers WHERE tenant_id = :tenant_id"
            " AND connector_id = :connector_id AND customer_id = :customer_id)"
        ),
        {"tenant_id": tenant_id, "connector_id": connector_id, "customer_id": customer_id},
    )
    return bool(result.scalar_one())


async def delete_deliveries_of(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    connector_id: uuid.UUID,
    resource_type: str,
    resource_ids: list[str],
    keep_key: str = "",
) -> int:
    """Forget the webhooks received about these resources, except `keep_key` (the delivery
    being handled, kept so that Shopify's retry of it is still recognised)."""
    if not resource_ids:
        return 0
    result = await session.execute(
        text(
            "DELETE FROM webhook_deliveries WHERE tenant_id = :tenant_id"
            " AND connector_id = :connector_id AND resource_type = :resource_type"
            " AND resource_id = ANY(:ids) AND delivery_key <> :keep_key"
        ),
        {
            "tenant_id": tenant_id,
            "connector_id": connector_id,
            "resource_type": resource_type,
            "ids": resource_ids,
            "keep_key": keep_key,
        },
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def mark_delivery_processed(
    session: AsyncSession, tenant_id: uuid.UUID, connector_id: uuid.UUID, delivery_key: str
) -> None:
    await session.execute(
        text(
            "UPDATE webhook_deliveries SET processed_at = now() WHERE tenant_id = :tenant_id"
            " AND connector_id = :connector_id AND delivery_key = :key"
        ),
        {"tenant_id": tenant_id, "connector_id": connector_id, "key": delivery_key},
    )


async def is_delivery_pending(
    session: AsyncSession, tenant_id: uuid.UUID, connector_id: uuid.UUID, delivery_key: str
) -> bool:
    result = await session.execute(
        select(WebhookDelivery.delivery_key).where(
            WebhookDelivery.tenant_id == tenant_id,
            WebhookDelivery.connector_id == connector_id,
            WebhookDelivery.delivery_key == delivery_key,
            WebhookDelivery.processed_at.is_(None),
        )
    )
    return result.first() is not None


async def keep_delivery_processed(session: AsyncSession, delivery: WebhookDelivery) -> None:
    """Write the delivery back as processed: a purge of the connector's data deletes its
    webhook records, this one included, and it must stay to recognise Shopify's retries."""
    statement = insert(WebhookDelivery).values(
        tenant_id=delivery.tenant_id,
        connector_id=delivery.connector_id,
        delivery_key=delivery.delivery_key,
        topic=delivery.topic,
        resource_type=delivery.resource_type,
        resource_id=delivery.resource_id,
        received_at=delivery.received_at,
        processed_at=func.now(),
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["tenant_id", "connector_id", "delivery_key"],
            set_={"processed_at": func.now()},
        )
    )


# --- compliance requests --------------------------------------------------------------------


async def add_compliance_request(
    session: AsyncSession, request: ShopifyComplianceRequest
) -> ShopifyComplianceRequest:
    session.add(request)
    await session.flush()
    await session.refresh(request)
    return request


async def list_compliance_requests(
    session: AsyncSession, tenant_id: uuid.UUID, connector_id: uuid.UUID | None = None
) -> list[ShopifyComplianceRequest]:
    statement = select(ShopifyComplianceRequest).where(
        ShopifyComplianceRequest.tenant_id == tenant_id
    )
    if connector_id is not None:
        statement = statement.where(ShopifyComplianceRequest.connector_id == connector_id)
    result = await session.execute(
        statement.order_by(ShopifyComplianceRequest.received_at, ShopifyComplianceRequest.id)
    )
    return list(result.scalars())


async def get_compliance_request(
    session: AsyncSession, tenant_id: uuid.UUID, request_id: uuid.UUID
) -> ShopifyComplianceRequest | None:
    result = await session.execute(
        select(ShopifyComplianceRequest).where(
            ShopifyComplianceRequest.tenant_id == tenant_id,
            ShopifyComplianceRequest.id == request_id,
        )
    )
    return result.scalar_one_or_none()
