"""All SQL of sales data: orders and their lines, with keyed hashes in place of PII."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from athos_identity.identity.repository import raw_connection
from athos_identity.sales.records import HashedOrder

_STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS incoming_orders (order_id text, customer_id text,"
    " email_key bytea, phone_key bytea, key_version smallint, currency text, total numeric,"
    " status text, placed_at timestamptz, platform_updated_at timestamptz) ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS incoming_lines (order_id text, line_id text,"
    " product_id text, variant_id text, sku text, quantity integer, unit_price numeric)"
    " ON COMMIT DELETE ROWS",
    "DELETE FROM incoming_orders",
    "DELETE FROM incoming_lines",
)

_UPSERT_ORDERS = """
INSERT INTO orders (tenant_id, connector_id, order_id, customer_id, email_key, phone_key,
                    key_version, currency, total, status, placed_at, platform_updated_at,
                    seen_in_run)
SELECT DISTINCT ON (order_id) :tenant_id, :connector_id, order_id, customer_id, email_key,
       phone_key, key_version, currency, total, status, placed_at, platform_updated_at, :run_id
FROM incoming_orders ORDER BY order_id, platform_updated_at DESC NULLS LAST
ON CONFLICT (tenant_id, connector_id, order_id) DO UPDATE SET
  customer_id = EXCLUDED.customer_id, email_key = EXCLUDED.email_key,
  phone_key = EXCLUDED.phone_key, key_version = EXCLUDED.key_version,
  currency = EXCLUDED.currency, total = EXCLUDED.total, status = EXCLUDED.status,
  placed_at = EXCLUDED.placed_at, platform_updated_at = EXCLUDED.platform_updated_at,
  seen_in_run = coalesce(EXCLUDED.seen_in_run, orders.seen_in_run), updated_at = now()
-- An older version arriving late (a retried webhook, an export taken before the last
-- change) leaves the newer one in place, lines included.
WHERE orders.platform_updated_at IS NULL OR EXCLUDED.platform_updated_at IS NULL
   OR EXCLUDED.platform_updated_at >= orders.platform_updated_at
RETURNING order_id
"""

# Orders by key (= ANY), not by a join with the staging table: temporary tables have no
# statistics, and such joins were planned as nested loops over every row.
_DELETE_LINES = """
DELETE FROM order_lines
WHERE tenant_id = :tenant_id AND connector_id = :connector_id AND order_id = ANY(:ids)
"""

_INSERT_LINES = """
INSERT INTO order_lines (tenant_id, connector_id, order_id, line_id, product_id, variant_id,
                         sku, quantity, unit_price)
SELECT DISTINCT ON (order_id, line_id) :tenant_id, :connector_id, order_id, line_id,
       product_id, variant_id, sku, quantity, unit_price
FROM incoming_lines WHERE order_id = ANY(:ids) ORDER BY order_id, line_id
"""


async def upsert_orders(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    connector_id: uuid.UUID,
    orders: Sequence[HashedOrder],
    run_id: uuid.UUID | None = None,
) -> None:
    """Insert or update orders and replace their lines: COPY to staging, then set-based SQL.

    `run_id` marks the orders as seen by a full sync (for its final sweep)."""
    for statement in _STAGING:
        await session.execute(text(statement))
    connection = await raw_connection(session)
    async with connection.cursor() as cursor:
        async with cursor.copy(
            "COPY incoming_orders (order_id, customer_id, email_key, phone_key, key_version,"
            " currency, total, status, placed_at, platform_updated_at) FROM STDIN"
        ) as copy:
            for o in orders:
                await copy.write_row(
                    (
                        o.order_id, o.customer_id, o.email_key, o.phone_key, o.key_version,
                        o.currency, o.total, o.status, o.placed_at, o.updated_at,
                    )
                )  # fmt: skip
        async with cursor.copy(
            "COPY incoming_lines (order_id, line_id, product_id, variant_id, sku, quantity,"
            " unit_price) FROM STDIN"
        ) as copy:
            for o in orders:
                for line in o.lines:
                    await copy.write_row(
                        (
                            o.order_id, line.line_id, line.product_id, line.variant_id,
                            line.sku, line.quantity, line.unit_price,
                        )
                    )  # fmt: skip
    params = {"tenant_id": tenant_id, "connector_id": connector_id, "run_id": run_id}
    written = await session.execute(text(_UPSERT_ORDERS), params)
    order_ids = [row[0] for row in written]
    if order_ids:
        await session.execute(text(_DELETE_LINES), {**params, "ids": order_ids})
        await session.execute(text(_INSERT_LINES), {**params, "ids": order_ids})


async def delete_orders(
    session: AsyncSession, tenant_id: uuid.UUID, connector_id: uuid.UUID, order_ids: Sequence[str]
) -> int:
    params = {"tenant_id": tenant_id, "connector_id": connector_id, "ids": list(order_ids)}
    await session.execute(text(_DELETE_LINES), params)
    result = await session.execute(
        text(
            "DELETE FROM orders WHERE tenant_id = :tenant_id AND connector_id = :connector_id"
            " AND order_id = ANY(:ids)"
        ),
        params,
    )
    return result.rowcount  # type: ignore[attr-defined,no-any-return]


async def sweep_orders(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    connector_id: uuid.UUID,
    run_id: uuid.UUID,
    placed_since: datetime | None = None,
    *,
    written_before: datetime,
) -> int:
    """Delete the connector's orders a full sync did not see (gone from the platform);
    with `placed_since`, only among the orders placed since then (the rest were not
    visible to the sync, so their absence says nothing). Orders written since
    `written_before` (the run's start) by something else, a webhook, are not gone either."""
    result = await session.execute(
        text(
            "DELETE FROM orders WHERE tenant_id = :tenant_id AND connector_id = :connector_id"
            " AND seen_in_run IS DISTINCT FROM :run_id AND updated_at < :written_before"
            " AND (CAST(:placed_since AS timestamptz) IS NULL OR placed_at >= :placed_since)"
            " RETURNING order_id"
        ),
        {
            "tenant_id": tenant_id,
            "connector_id": connector_id,
            "run_id": run_id,
            "placed_since": placed_since,
            "written_before": written_before,
        },
    )
    gone = [row[0] for row in result]
    if gone:
        await session.execute(
            text(_DELETE_LINES),
            {"tenant_id": tenant_id, "connector_id": connector_id, "ids": gone},
        )
    return len(gone)


async def forget_identifiers(
    session: AsyncSession, tenant_id: uuid.UUID, keys: Sequence[bytes]
) -> int:
    """Erasure: drop these keyed hashes from every order that carries them."""
    result = await session.execute(
        text(
            "UPDATE orders SET"
            "  email_key = CASE WHEN email_key = ANY(:keys) THEN NULL ELSE email_key END,"
            "  phone_key = CASE WHEN phone_key = ANY(:keys) THEN NULL ELSE phone_key END,"
            "  updated_at = now()"
            " WHERE tenant_id = :tenant_id AND (email_key = ANY(:keys) OR phone_key = ANY(:keys))"
        ),
        {"tenant_id": tenant_id, "keys": list(keys)},
    )
    return result.rowcount  # type: ignore[attr-defined,no-any-return]


async def forget_customer_identifiers(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    customer_id: str,
    connector_id: uuid.UUID | None = None,
    order_ids: Sequence[str] = (),
) -> int:
    """Erasure: drop the keyed hashes from a customer's orders (and from the listed orders)."""
    result = await session.execute(
        text(
            "UPDATE orders SET email_key = NULL, phone_key = NULL, updated_at = now()"
            " WHERE tenant_id = :tenant_id"
            " AND (CAST(:connector_id AS uuid) IS NULL OR connector_id = :connector_id)"
            " AND (customer_id = :customer_id OR order_id = ANY(:order_ids))"
            " AND (email_key IS NOT NULL OR phone_key IS NOT NULL)"
        ),
        {
            "tenant_id": tenant_id,
            "customer_id": customer_id,
            "connector_id": connector_id,
            "order_ids": list(order_ids),
        },
    )
    return result.rowcount  # type: ignore[attr-defined,no-any-return]


async def orders_of_customer(
    session: AsyncSession, tenant_id: uuid.UUID, customer_id: str, connector_id: uuid.UUID | None
) -> list[dict[str, Any]]:
    result = await session.execute(
        text(
            "SELECT o.connector_id, o.order_id, o.currency, o.total, o.status, o.placed_at,"
            "  o.platform_updated_at AS updated_at,"
            "  coalesce(jsonb_agg(jsonb_build_object('line_id', l.line_id,"
            "    'product_id', l.product_id, 'variant_id', l.variant_id, 'sku', l.sku,"
            "    'quantity', l.quantity, 'unit_price', l.unit_price) ORDER BY l.line_id)"
            "    FILTER (WHERE l.line_id IS NOT NULL), '[]') AS lines"
            " FROM orders o LEFT JOIN order_lines l ON l.tenant_id = o.tenant_id"
            "  AND l.connector_id = o.connector_id AND l.order_id = o.order_id"
            " WHERE o.tenant_id = :tenant_id AND o.customer_id = :customer_id"
            "  AND (CAST(:connector_id AS uuid) IS NULL OR o.connector_id = :connector_id)"
            " GROUP BY o.tenant_id, o.connector_id, o.order_id"
            " ORDER BY o.placed_at DESC NULLS LAST, o.order_id"
        ),
        {"tenant_id": tenant_id, "customer_id": customer_id, "connector_id": connector_id},
    )
    return [dict(row._mapping) for row in result]


async def orders_held_of_customer(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    connector_id: uuid.UUID,
    customer_id: str,
    order_ids: Sequence[str] = (),
) -> list[tuple[str, bool, bool]]:
    """For a data request: the orders held under the customer's id or among the listed ones,
    as (order id, placed by that customer, carries a keyed hash); never the hashes."""
    result = await session.execute(
        text(
            "SELECT order_id, customer_id IS NOT DISTINCT FROM :customer_id,"
            "  email_key IS NOT NULL OR phone_key IS NOT NULL"
            " FROM orders WHERE tenant_id = :tenant_id AND connector_id = :connector_id"
            " AND (customer_id = :customer_id OR order_id = ANY(:order_ids))"
            " ORDER BY order_id"
        ),
        {
            "tenant_id": tenant_id,
            "connector_id": connector_id,
            "customer_id": customer_id,
            "order_ids": list(order_ids),
        },
    )
    return [(str(order_id), bool(own), bool(hashed)) for order_id, own, hashed in result]
