"""All SQL of connectors, their encrypted credentials and received webhooks.

Row-level security confines every query to the transaction's tenant; the tenant id is still
named in every statement (Citus routes by it).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from athos_identity.connectors.models import Connector, ConnectorCredential, WebhookDelivery


async def list_connectors(session: AsyncSession, tenant_id: uuid.UUID) -> list[Connector]:
    result = await session.execute(
        select(Connector)
        .where(Connector.tenant_id == tenant_id)
        .order_by(Connector.created_at, Connector.id)
    )
    return list(result.scalars())


async def get_connector(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    connector_id: uuid.UUID,
    *,
    for_update: bool = False,
) -> Connector | None:
    statement = select(Connector).where(
        Connector.tenant_id == tenant_id, Connector.id == connector_id
    )
    if for_update:
        statement = statement.with_for_update()
    result = await session.execute(statement)
    return result.scalar_one_or_none()


async def find_by_store(
    session: AsyncSession, tenant_id: uuid.UUID, platform: str, store: str
) -> Connector | None:
    result = await session.execute(
        select(Connector).where(
            Connector.tenant_id == tenant_id,
            Connector.platform == platform,
            Connector.store == store,
        )
    )
    return result.scalar_one_or_none()


async def touch(session: AsyncSession, connector: Connector) -> None:
    """Flush pending attribute changes and read back server-set columns (updated_at)."""
    connector.updated_at = datetime.now(UTC)
    await session.flush()
    await session.refresh(connector)


async def delete_connector(session: AsyncSession, connector: Connector) -> None:
    await session.execute(
        delete(Connector).where(
            Connector.tenant_id == connector.tenant_id, Connector.id == connector.id
        )
    )


# --- credentials ----------------------------------------------------------------------------


async def credential_hints(
    session: AsyncSession, tenant_id: uuid.UUID, connector_ids: list[uuid.UUID] | None = None
) -> dict[uuid.UUID, str]:
    """connector id -> hint of its main credential (the token, not a refresh token)."""
    statement = select(ConnectorCredential.connector_id, ConnectorCredential.hint).where(
        ConnectorCredential.tenant_id == tenant_id,
        ConnectorCredential.kind != "shopify_refresh",
    )
    if connector_ids is not None:
        statement = statement.where(ConnectorCredential.connector_id.in_(connector_ids))
    result = await session.execute(statement)
    return {row.connector_id: row.hint for row in result}


async def get_credential(
    session: AsyncSession, tenant_id: uuid.UUID, connector_id: uuid.UUID, kind: str
) -> ConnectorCredential | None:
    result = await session.execute(
        select(ConnectorCredential).where(
            ConnectorCredential.tenant_id == tenant_id,
            ConnectorCredential.connector_id == connector_id,
            ConnectorCredential.kind == kind,
        )
    )
    return result.scalar_one_or_none()


async def credentials_not_at_version(
    session: AsyncSession, tenant_id: uuid.UUID, key_version: int, limit: int = 500
) -> list[ConnectorCredential]:
    result = await session.execute(
        select(ConnectorCredential)
        .where(
            ConnectorCredential.tenant_id == tenant_id,
            ConnectorCredential.key_version != key_version,
        )
        .limit(limit)
        .with_for_update()
    )
    return list(result.scalars())


async def upsert_credential(session: AsyncSession, credential: ConnectorCredential) -> None:
    """Insert or replace in one statement: readers see the old secret or the new, never none."""
    values = {
        "tenant_id": credential.tenant_id,
        "connector_id": credential.connector_id,
        "kind": credential.kind,
        "ciphertext": credential.ciphertext,
        "key_version": credential.key_version,
        "hint": credential.hint,
        "expires_at": credential.expires_at,
    }
    statement = insert(ConnectorCredential).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=["tenant_id", "connector_id", "kind"],
        set_={
            "ciphertext": statement.excluded.ciphertext,
            "key_version": statement.excluded.key_version,
            "hint": statement.excluded.hint,
            "expires_at": statement.excluded.expires_at,
            "created_at": text("now()"),
        },
    )
    await session.execute(statement)


async def delete_credentials(
    session: AsyncSession, tenant_id: uuid.UUID, connector_id: uuid.UUID
) -> int:
    result = await session.execute(
        delete(ConnectorCredential).where(
            ConnectorCredential.tenant_id == tenant_id,
            ConnectorCredential.connector_id == connector_id,
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- the connector's data -------------------------------------------------------------------

# Every table with a foreign key to connectors, and the column holding connectors.id.
_REFERENCING_TABLES = text(
    """
    SELECT DISTINCT src.relname AS table_name, a.attname AS column_name
    FROM pg_constraint c
    JOIN pg_class src ON src.oid = c.conrelid
    JOIN LATERAL unnest(c.conkey, c.confkey) AS k(con, ref) ON true
    JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.con
    JOIN pg_attribute r ON r.attrelid = c.confrelid AND r.attnum = k.ref
    WHERE c.contype = 'f' AND c.confrelid = 'connectors'::regclass AND r.attname = 'id'
    ORDER BY 1
    """
)


async def purge_connector_data(
    session: AsyncSession, tenant_id: uuid.UUID, connector_id: uuid.UUID
) -> dict[str, int]:
    """Delete every row that belongs to the connector (identity links, sales, syncs, hooks,
    credentials): each table with a foreign key to connectors, found in the catalog so a
    table added later is purged too. Returns rows deleted per table."""
    tables = (await session.execute(_REFERENCING_TABLES)).all()
    deleted: dict[str, int] = {}
    for table_name, column_name in tables:
        quoted_table = '"' + table_name.replace('"', '""') + '"'
        quoted_column = '"' + column_name.replace('"', '""') + '"'
        result = await session.execute(
            text(
                f"DELETE FROM {quoted_table}"  # noqa: S608 (names from the catalog, quoted)
                f" WHERE tenant_id = :tenant_id AND {quoted_column} = :connector_id"
            ),
            {"tenant_id": tenant_id, "connector_id": connector_id},
        )
        deleted[table_name] = int(result.rowcount or 0)  # type: ignore[attr-defined]
    return deleted


# --- webhooks -------------------------------------------------------------------------------


async def record_delivery(session: AsyncSession, delivery: WebhookDelivery) -> bool:
    """Store a received webhook; False when the same delivery was already recorded."""
    statement = (
        insert(WebhookDelivery)
        .values(
            tenant_id=delivery.tenant_id,
            connector_id=delivery.connector_id,
            delivery_key=delivery.delivery_key,
            topic=delivery.topic,
            resource_type=delivery.resource_type,
            resource_id=delivery.resource_id,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "connector_id", "delivery_key"])
        .returning(WebhookDelivery.delivery_key)
    )
    result = await session.execute(statement)
    return result.first() is not None


async def pending_deliveries(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    connector_id: uuid.UUID,
    limit: int = 1000,
    topics: Sequence[str] | None = None,
) -> list[WebhookDelivery]:
    """Deliveries not yet processed, oldest first (only those topics, when given)."""
    statement = select(WebhookDelivery).where(
        WebhookDelivery.tenant_id == tenant_id,
        WebhookDelivery.connector_id == connector_id,
        WebhookDelivery.processed_at.is_(None),
    )
    if topics is not None:
        statement = statement.where(WebhookDelivery.topic.in_(topics))
    statement = statement.order_by(WebhookDelivery.received_at, WebhookDelivery.delivery_key)
    result = await session.execute(statement.limit(limit))
    return list(result.scalars())


async def mark_delivery_processed(
    session: AsyncSession, tenant_id: uuid.UUID, connector_id: uuid.UUID, delivery_key: str
) -> None:
    await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.tenant_id == tenant_id,
            WebhookDelivery.connector_id == connector_id,
            WebhookDelivery.delivery_key == delivery_key,
        )
        .values(processed_at=func.now())
    )
