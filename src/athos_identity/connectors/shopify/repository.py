"""All SQL of the Shopify connector: OAuth states, compliance requests, webhook routing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from athos_identity.connectors.models import Connector
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


async def delivery_counts_of(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    connector_id: uuid.UUID,
    resource_type: str,
    resource_ids: list[str],
) -> list[str]:
    """Which of these resources we hold a webhook record of."""
    if not resource_ids:
        return []
    result = await session.execute(
        text(
            "SELECT DISTINCT resource_id FROM webhook_deliveries WHERE tenant_id = :tenant_id"
            " AND connector_id = :connector_id AND resource_type = :resource_type"
            " AND resource_id = ANY(:ids)"
        ),
        {
            "tenant_id": tenant_id,
            "connector_id": connector_id,
            "resource_type": resource_type,
            "ids": resource_ids,
        },
    )
    return sorted(str(r) for r in result.scalars())


async def delete_deliveries_of(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    connector_id: uuid.UUID,
    resource_type: str,
    resource_ids: list[str],
) -> int:
    if not resource_ids:
        return 0
    result = await session.execute(
        text(
            "DELETE FROM webhook_deliveries WHERE tenant_id = :tenant_id"
            " AND connector_id = :connector_id AND resource_type = :resource_type"
            " AND resource_id = ANY(:ids)"
        ),
        {
            "tenant_id": tenant_id,
            "connector_id": connector_id,
            "resource_type": resource_type,
            "ids": resource_ids,
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
