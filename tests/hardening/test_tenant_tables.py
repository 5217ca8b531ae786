"""Every table, found in the catalog: row-level security confines it to one tenant, and its
keys are ready to distribute by tenant_id (DESIGN.md §7, §12; docs/scaling.md).

Excepted: alembic_version (one row, no tenant) and the procrastinate_* job queue. The
queue's rows carry ids only (tenant and connector ids as task arguments, no tenant
data); the API and workers of every tenant share it, and on Citus it stays a local table
on the coordinator (or a reference table), never distributed: see docs/scaling.md.
"""

from __future__ import annotations

import uuid
from graphlib import TopologicalSorter
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import text

from athos_identity import db

NOT_TENANT_TABLES = "relname <> 'alembic_version' AND relname NOT LIKE 'procrastinate%'"

# Values for columns that CHECK constraints restrict (the generic ones would be refused).
CHECKED: dict[tuple[str, str], Any] = {
    ("connectors", "platform"): "bigcommerce",
    ("identity_links", "kind"): 1,
    ("connector_credentials", "kind"): "bigcommerce_token",
    ("shopify_compliance_requests", "topic"): "shop/redact",
    ("sync_runs", "mode"): "full",
}


def tenant_tables(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        f" WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND {NOT_TENANT_TABLES}"
        " ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def foreign_keys(conn: psycopg.Connection, table: str) -> list[tuple[str, list[str], list[str]]]:
    """(referenced table, local columns, referenced columns), in key order."""
    rows = conn.execute(
        """SELECT con.oid, ref.relname,
                  array(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
                        JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n
                        ORDER BY k.i),
                  array(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, i)
                        JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n
                        ORDER BY k.i)
           FROM pg_constraint con JOIN pg_class ref ON ref.oid = con.confrelid
           WHERE con.contype = 'f' AND con.conrelid = %s::regclass""",
        (table,),
    ).fetchall()
    return [(r[1], list(r[2]), list(r[3])) for r in rows]


def primary_key(conn: psycopg.Connection, table: str) -> list[str]:
    row = conn.execute(
        """SELECT array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o)
                        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n
                        ORDER BY k.o)
           FROM pg_index i WHERE i.indrelid = %s::regclass AND i.indisprimary""",
        (table,),
    ).fetchone()
    return list(row[0]) if row else []


def _required_columns(conn: psycopg.Connection, table: str) -> list[tuple[str, str]]:
    return [
        (r[0], r[1])
        for r in conn.execute(
            "SELECT column_name, udt_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name = %s AND is_nullable = 'NO'"
            " AND column_default IS NULL ORDER BY ordinal_position",
            (table,),
        ).fetchall()
    ]


def _generic(udt: str) -> Any:
    return {
        "uuid": uuid.uuid4,
        "bytea": lambda: uuid.uuid4().bytes * 2,  # 32 bytes: the hashes' and states' size
        "int2": lambda: 1,
        "int4": lambda: 1,
        "int8": lambda: 1,
        "numeric": lambda: 1,
        "bool": lambda: False,
        "timestamptz": lambda: "2026-12-03T00:00:00Z",
        "jsonb": lambda: "{}",
        "_text": lambda: [],
    }.get(udt, lambda: f"x-{uuid.uuid4().hex[:8]}")()


def insert_one_row_per_table(conn: psycopg.Connection, tenant_id: uuid.UUID) -> None:
    """As the owner (RLS scoped to the tenant: the owner is subject to FORCE'd RLS too)."""
    tables = tenant_tables(conn)
    fks = {t: foreign_keys(conn, t) for t in tables}
    order = TopologicalSorter({t: {ref for ref, _, _ in fks[t] if ref != t} for t in tables})
    rows: dict[str, dict[str, Any]] = {}
    with conn.transaction():
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant_id),))
        for table in order.static_order():
            if table not in tables:
                continue
            row: dict[str, Any] = {"tenant_id": tenant_id}
            for ref, local, remote in fks[table]:
                for lc, rc in zip(local, remote, strict=True):
                    row[lc] = rows[ref][rc]
            for column, udt in _required_columns(conn, table):
                if column not in row:
                    row[column] = CHECKED.get((table, column), _generic(udt))
            returned = conn.execute(
                sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING *").format(
                    sql.Identifier(table),
                    sql.SQL(", ").join(map(sql.Identifier, row)),
                    sql.SQL(", ").join(sql.Placeholder() * len(row)),
                ),
                list(row.values()),
            )
            names = [d.name for d in returned.description or []]
            rows[table] = dict(zip(names, returned.fetchone() or (), strict=True))


def test_the_catalog_has_the_tenant_tables(owner_conn: psycopg.Connection) -> None:
    tables = set(tenant_tables(owner_conn))
    assert {"tenants", "api_keys", "connectors", "identity_links", "orders"} <= tables


async def test_every_table_shows_a_scoped_session_its_own_rows_only(
    owner_conn: psycopg.Connection,
) -> None:
    acme, globex = uuid.uuid4(), uuid.uuid4()
    insert_one_row_per_table(owner_conn, acme)
    insert_one_row_per_table(owner_conn, globex)
    tables = tenant_tables(owner_conn)
    for table in tables:
        with owner_conn.transaction():
            owner_conn.execute("SET LOCAL row_security = off")
            total = owner_conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
            ).fetchone()
        assert total == (2,), f"{table}: the seed wrote {total} rows, expected 2"

    for tenant_id in (acme, globex):
        async with db.tenant_transaction(tenant_id) as session:
            for table in tables:
                counted = await session.execute(text(f'SELECT count(*) FROM "{table}"'))
                assert counted.scalar_one() == 1, f"{table}: a scoped session saw another's rows"
                owners = await session.execute(text(f'SELECT DISTINCT tenant_id FROM "{table}"'))
                assert owners.scalars().all() == [tenant_id], table
    async with db.transaction() as session:
        for table in tables:
            counted = await session.execute(text(f'SELECT count(*) FROM "{table}"'))
            assert counted.scalar_one() == 0, f"{table}: an unscoped session sees rows"


def test_every_primary_key_starts_with_tenant_id(owner_conn: psycopg.Connection) -> None:
    """The distribution column must lead every key (Citus: unique constraints must include
    it; leading it keeps each tenant's rows together in every index)."""
    for table in tenant_tables(owner_conn):
        key = primary_key(owner_conn, table)
        assert key, f"{table} has no primary key"
        assert key[0] == "tenant_id", f"{table}: primary key {key} does not start with tenant_id"


def test_every_foreign_key_includes_tenant_id(owner_conn: psycopg.Connection) -> None:
    """Co-located joins and foreign keys on Citus need tenant_id on both sides, matched."""
    for table in tenant_tables(owner_conn):
        for ref, local, remote in foreign_keys(owner_conn, table):
            pairs = dict(zip(local, remote, strict=True))
            assert pairs.get("tenant_id") == "tenant_id", (
                f"{table} -> {ref} ({local} -> {remote}) does not include tenant_id"
            )


def test_every_unique_index_includes_tenant_id(owner_conn: psycopg.Connection) -> None:
    rows = owner_conn.execute(
        """SELECT c.relname, ic.relname, pg_get_indexdef(i.indexrelid)
           FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
           JOIN pg_class ic ON ic.oid = i.indexrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND i.indisunique
             AND c.relname <> 'alembic_version' AND c.relname NOT LIKE 'procrastinate%'"""
    ).fetchall()
    for table, index, definition in rows:
        assert "tenant_id" in definition, f"{table}.{index} is unique without tenant_id"
