"""All SQL of the link store: (tenant, kind, key, key version) <-> (connector, customer id).

Every statement filters on tenant_id explicitly (the Citus shard key) on top of row-level
security. Bulk writes go through COPY into a temporary table, then one set-based statement.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from athos_identity.db import fast_pool
from athos_identity.identity.hashing import IdentifierKind
from athos_identity.identity.records import HashedCustomer
from athos_identity.kit.coalesce import Coalescer

KIND_CODES = {IdentifierKind.EMAIL: 1, IdentifierKind.PHONE: 2}
KINDS_BY_CODE = {code: kind for kind, code in KIND_CODES.items()}


@dataclass(frozen=True, slots=True)
class LinkChanges:
    added: int
    removed: int


async def raw_connection(session: AsyncSession) -> psycopg.AsyncConnection:
    """The psycopg connection under the session's transaction, for COPY."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection  # type: ignore[return-value]


async def api_connector_id(session: AsyncSession, tenant_id: uuid.UUID) -> uuid.UUID:
    """The tenant's `api` connector (generic ingest), created on first use."""
    await session.execute(
        text(
            "INSERT INTO connectors (tenant_id, id, platform, name, state)"
            " VALUES (:tenant_id, :id, 'api', 'API ingest', 'granted')"
            " ON CONFLICT (tenant_id, platform, (coalesce(store, ''))) DO NOTHING"
        ),
        {"tenant_id": tenant_id, "id": uuid.uuid4()},
    )
    result = await session.execute(
        text(
            "SELECT id FROM connectors"
            " WHERE tenant_id = :tenant_id AND platform = 'api' AND store IS NULL"
        ),
        {"tenant_id": tenant_id},
    )
    return result.scalar_one()


# Per-connection staging tables; emptied at commit, and before each use in case a
# transaction calls replace_customer_links more than once.
_STAGING_TABLES = (
    "CREATE TEMP TABLE IF NOT EXISTS incoming_links"
    " (kind smallint, key bytea, key_version smallint, customer_id text) ON COMMIT DELETE ROWS",
    "DELETE FROM incoming_links",
)


async def replace_customer_links(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    connector_id: uuid.UUID,
    customers: Iterable[HashedCustomer],
) -> LinkChanges:
    """Make each customer's links exactly its identifiers: add the new, drop the gone.

    Idempotent: replaying the same customers changes nothing. The caller's transaction
    makes it atomic with whatever else it writes (a sync's cursor, for one).
    """
    connection = await raw_connection(session)
    for statement in _STAGING_TABLES:
        await session.execute(text(statement))
    async with connection.cursor() as cursor:
        seen: set[str] = set()
        async with cursor.copy(
            "COPY incoming_links (kind, key, key_version, customer_id) FROM STDIN"
        ) as copy:
            for customer in customers:
                seen.add(customer.customer_id)
                for identifier in customer.identifiers:
                    await copy.write_row(
                        (
                            KIND_CODES[identifier.kind],
                            identifier.key,
                            identifier.key_version,
                            customer.customer_id,
                        )
                    )
    params = {"tenant_id": tenant_id, "connector_id": connector_id}
    # Customers by key (= ANY), not by a join with the staging table: temporary tables
    # have no statistics, and a join was planned as a nested loop over every link.
    removed = await session.execute(
        text(
            "DELETE FROM identity_links l"
            " WHERE l.tenant_id = :tenant_id AND l.connector_id = :connector_id"
            "   AND l.customer_id = ANY(:ids)"
            "   AND NOT EXISTS (SELECT 1 FROM incoming_links i"
            "     WHERE i.customer_id = l.customer_id AND i.key = l.key"
            "       AND i.kind = l.kind AND i.key_version = l.key_version)"
        ),
        {**params, "ids": list(seen)},
    )
    added = await session.execute(
        text(
            "INSERT INTO identity_links"
            " (tenant_id, kind, key, key_version, connector_id, customer_id)"
            " SELECT DISTINCT :tenant_id, kind, key, key_version, :connector_id, customer_id"
            " FROM incoming_links"
            " ON CONFLICT DO NOTHING"
        ),
        params,
    )
    return LinkChanges(added=added.rowcount, removed=removed.rowcount)  # type: ignore[attr-defined]


# (kind, key) -> the customers linked to it, ordered, as look-ups answer them:
# {"connector_id": ..., "customer_id": ...}. Shared by every caller: never change one.
LinkIndex = dict[tuple[IdentifierKind, bytes], list[dict[str, str]]]

# Statements per tenant at a time, per process: enough to read the chunks of one batch in
# parallel (bench/lookup.py, two cores), few enough that one tenant's burst leaves the pool
# to the others. Keys per statement: the look-up's own limit.
_FETCHES_PER_TENANT = 2
_KEYS_PER_FETCH = 1000


async def _read_links(tenant_id: uuid.UUID, keys: list[bytes]) -> LinkIndex:
    # The keys travel packed in one bytea: dumping a list of 1,000 bytes objects as a
    # bytea[] cost more than the query itself.
    pool = await fast_pool()
    async with pool.connection() as connection:
        cursor = await connection.execute(
            "SELECT kind, key, connector_id, customer_id FROM athos_find_links_packed(%s, %s)",
            (tenant_id, b"".join(keys)),
            binary=True,  # keys arrive as bytes, not hex to decode
        )
        rows = await cursor.fetchall()
    index: LinkIndex = {}
    kinds = KINDS_BY_CODE
    for kind, key, connector_id, customer_id in rows:
        customer = {"connector_id": connector_id, "customer_id": customer_id}
        index.setdefault((kinds[kind], key), []).append(customer)
    for customers in index.values():
        if len(customers) > 1:  # the statement returns rows unsorted (migration 0008)
            customers.sort(key=_by_connector_and_id)
    return index


def _by_connector_and_id(customer: dict[str, str]) -> tuple[str, str]:
    return customer["connector_id"], customer["customer_id"]


_links = Coalescer(_read_links, max_fetches=_FETCHES_PER_TENANT, max_items=_KEYS_PER_FETCH)


def submit_find_links(tenant_id: uuid.UUID, keys: Sequence[bytes]) -> asyncio.Future[LinkIndex]:
    """The links of `keys` (and perhaps of other keys of the tenant: read only your own).

    The look-up hot path: one statement on the fast pool, shared with the tenant's other
    look-ups waiting meanwhile (kit/coalesce.py). Returns at once; await the future."""
    return _links.submit(tenant_id, keys)


async def find_links(tenant_id: uuid.UUID, keys: Sequence[bytes]) -> LinkIndex:
    return await submit_find_links(tenant_id, keys)


async def delete_links_by_keys(
    session: AsyncSession, tenant_id: uuid.UUID, keys: Sequence[bytes]
) -> int:
    result = await session.execute(
        text("DELETE FROM identity_links WHERE tenant_id = :tenant_id AND key = ANY(:keys)"),
        {"tenant_id": tenant_id, "keys": list(keys)},
    )
    return result.rowcount  # type: ignore[attr-defined,no-any-return]


async def delete_links_of_customer(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    customer_id: str,
    connector_id: uuid.UUID | None = None,
) -> int:
    result = await session.execute(
        text(
            "DELETE FROM identity_links WHERE tenant_id = :tenant_id"
            " AND customer_id = :customer_id"
            " AND (CAST(:connector_id AS uuid) IS NULL OR connector_id = :connector_id)"
        ),
        {"tenant_id": tenant_id, "customer_id": customer_id, "connector_id": connector_id},
    )
    return result.rowcount  # type: ignore[attr-defined,no-any-return]


# --- the customers a connector knows (for deletions and full-sync sweeps) ------------------


async def mark_customers_seen(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    connector_id: uuid.UUID,
    customer_ids: Sequence[str],
    run_id: uuid.UUID | None,
) -> None:
    await session.execute(
        text(
            "INSERT INTO customers (tenant_id, connector_id, customer_id, seen_in_run)"
            " SELECT :tenant_id, :connector_id, c, :run_id FROM unnest(CAST(:ids AS text[])) c"
            " ON CONFLICT (tenant_id, connector_id, customer_id) DO UPDATE"
            " SET seen_in_run = coalesce(EXCLUDED.seen_in_run, customers.seen_in_run),"
            "     updated_at = now()"
        ),
        {
            "tenant_id": tenant_id,
            "connector_id": connector_id,
            "ids": list(customer_ids),
            "run_id": run_id,
        },
    )


async def delete_customers(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    connector_id: uuid.UUID,
    customer_ids: Sequence[str],
) -> int:
    """Forget customers deleted on their platform: their links and their row."""
    params = {"tenant_id": tenant_id, "connector_id": connector_id, "ids": list(customer_ids)}
    await session.execute(
        text(
            "DELETE FROM identity_links WHERE tenant_id = :tenant_id"
            " AND connector_id = :connector_id AND customer_id = ANY(:ids)"
        ),
        params,
    )
    result = await session.execute(
        text(
            "DELETE FROM customers WHERE tenant_id = :tenant_id"
            " AND connector_id = :connector_id AND customer_id = ANY(:ids)"
        ),
        params,
    )
    return result.rowcount  # type: ignore[attr-defined,no-any-return]


async def sweep_customers(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    connector_id: uuid.UUID,
    run_id: uuid.UUID,
    written_before: datetime,
) -> int:
    """After a full sync: forget the connector's customers that the run did not see and
    that nothing wrote since `written_before` (the run's start: a webhook's customer,
    created during the export, is not gone).

    The gone customers are found first (usually few) and their links deleted by key: a join
    of the two tables right after a first sync, before any ANALYZE, was planned as a
    nested loop over every link (seconds for a few thousand customers)."""
    result = await session.execute(
        text(
            "DELETE FROM customers WHERE tenant_id = :tenant_id AND connector_id = :connector_id"
            " AND seen_in_run IS DISTINCT FROM :run_id AND updated_at < :written_before"
            " RETURNING customer_id"
        ),
        {
            "tenant_id": tenant_id,
            "connector_id": connector_id,
            "run_id": run_id,
            "written_before": written_before,
        },
    )
    gone = [row[0] for row in result]
    if gone:
        await session.execute(
            text(
                "DELETE FROM identity_links WHERE tenant_id = :tenant_id"
                " AND connector_id = :connector_id AND customer_id = ANY(:ids)"
            ),
            {"tenant_id": tenant_id, "connector_id": connector_id, "ids": gone},
        )
    return len(gone)
