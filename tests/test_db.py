"""The database's own guarantees: migrations round-trip, and RLS confines every query."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from sqlalchemy import text

from athos_identity import db
from athos_identity.settings import get_settings
from support import DatabaseUnderTest, create_database, create_tenant, drop_database


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {r[0] for r in rows}


def test_migrations_upgrade_downgrade_upgrade_on_an_empty_database(
    postgres_server: str, test_database
) -> None:
    name, url = create_database(postgres_server)
    try:
        sqlalchemy_url = db.as_psycopg_url(url)
        db.migrate(sqlalchemy_url)
        migrated = _tables(url)
        assert {"tenants", "api_keys", "alembic_version"} <= migrated
        db.downgrade(sqlalchemy_url, "base")
        assert _tables(url) <= {"alembic_version"}
        db.migrate(sqlalchemy_url)
        assert _tables(url) == migrated
    finally:
        drop_database(postgres_server, name)


async def test_a_scoped_session_without_a_tenant_filter_sees_only_its_own_rows(
    test_database,
) -> None:
    acme = await create_tenant("Acme")
    globex = await create_tenant("Globex")
    async with db.tenant_transaction(acme.tenant_id) as session:
        tenants = (await session.execute(text("SELECT tenant_id FROM tenants"))).scalars().all()
        keys = (await session.execute(text("SELECT tenant_id FROM api_keys"))).scalars().all()
    assert tenants == [acme.tenant_id]
    assert keys == [acme.tenant_id]
    assert globex.tenant_id not in keys


async def test_an_unscoped_session_sees_nothing(test_database) -> None:
    await create_tenant("Acme")
    async with db.transaction() as session:
        count = (await session.execute(text("SELECT count(*) FROM api_keys"))).scalar_one()
    assert count == 0


async def test_rows_of_another_tenant_cannot_be_written(test_database) -> None:
    acme = await create_tenant("Acme")
    globex = await create_tenant("Globex")
    with pytest.raises(Exception, match="row-level security"):
        async with db.tenant_transaction(acme.tenant_id) as session:
            await session.execute(
                text(
                    "INSERT INTO api_keys (tenant_id, id, key_hash, scopes)"
                    " VALUES (:t, :i, :h, '{admin}')"
                ),
                {"t": globex.tenant_id, "i": uuid.uuid4(), "h": b"x" * 32},
            )
    async with db.tenant_transaction(acme.tenant_id) as session:
        updated = await session.execute(
            text("UPDATE api_keys SET name = 'pwned' WHERE tenant_id = :t"), {"t": globex.tenant_id}
        )
        assert updated.rowcount == 0


def test_the_application_role_owns_no_table_and_every_table_forces_rls(owner_conn) -> None:
    role = get_settings().app_role
    rows = owner_conn.execute(
        """SELECT c.relname, pg_get_userbyid(c.relowner), c.relrowsecurity, c.relforcerowsecurity
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname <> 'alembic_version'
             AND c.relname NOT LIKE 'procrastinate%'"""
    ).fetchall()
    assert rows, "there are tenant tables"
    for table, owner, rls, forced in rows:
        assert owner != role, f"{table} is owned by the application role"
        assert rls and forced, f"{table} does not FORCE row-level security"
    superuser = owner_conn.execute(
        "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = %s", (role,)
    ).fetchone()
    assert superuser == (False,)


async def test_the_service_connects_as_the_application_role(
    test_database: DatabaseUnderTest,
) -> None:
    async with db.transaction() as session:
        current = (await session.execute(text("SELECT current_user"))).scalar_one()
    assert current == get_settings().app_role


@pytest.fixture
def login_role(test_database: DatabaseUnderTest, postgres_server: str):
    """A login role of its own for the application, a member of the app role (as an
    operator creates it for ATHOS_APP_DATABASE_URL)."""
    name = f"athos_login_{uuid.uuid4().hex[:8]}"
    app_role = get_settings().app_role
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{name}" LOGIN')
        conn.execute(f'GRANT "{app_role}" TO "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{name}"')
            conn.execute(f'DROP ROLE "{name}"')


async def test_with_a_login_role_of_its_own_the_app_cannot_become_the_owner(
    test_database: DatabaseUnderTest, login_role: str
) -> None:
    """Through the default (the owner's login acting as the app role), any statement could
    SET ROLE back to the owner; through ATHOS_APP_DATABASE_URL there is no owner to become."""
    from sqlalchemy.engine import make_url

    from athos_identity.identity import repository
    from athos_identity.settings import use_settings

    acme = await create_tenant("Acme")
    await create_tenant("Globex")
    own_url = make_url(test_database.sqlalchemy_url).set(username=login_role)
    default = get_settings()
    await db.dispose_engine()
    use_settings(default.model_copy(update={"app_database_url": own_url.render_as_string(False)}))
    try:
        async with db.tenant_transaction(acme.tenant_id) as session:
            assert (await session.execute(text("SELECT count(*) FROM tenants"))).scalar() == 1
        async with db.transaction() as session:
            await session.execute(text("RESET ROLE"))
            assert (await session.execute(text("SELECT current_user"))).scalar() == login_role
            assert (await session.execute(text("SELECT count(*) FROM tenants"))).scalar() == 0
        owner = make_url(test_database.sqlalchemy_url).username
        with pytest.raises(Exception, match="permission denied"):
            async with db.transaction() as session:
                await session.execute(text(f'SET ROLE "{owner}"'))
        # the look-up hot path (a pool of its own) logs in as that role too
        pool = await db.fast_pool()
        async with pool.connection() as connection:
            cursor = await connection.execute("SELECT current_user")
            assert (await cursor.fetchone()) == (login_role,)
        assert await repository.find_links(acme.tenant_id, [b"\0" * 32]) == {}
    finally:
        await db.dispose_engine()
        use_settings(default)
