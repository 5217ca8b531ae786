"""Test harness: one real PostgreSQL per test session, migrated once; every test isolated.

The server is ATHOS_TEST_DATABASE_URL when set (a fresh database is created on it and
dropped afterwards), otherwise an embedded pgserver in a temporary directory.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator

import httpx
import psycopg
import pytest
from psycopg import sql

from athos_identity import db
from athos_identity.settings import Settings, use_settings
from support import (
    TEST_MASTER_SECRET,
    DatabaseUnderTest,
    TenantKeys,
    create_database,
    create_tenant,
    drop_database,
    pg_dump_binary,
    tenant_tables,
)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A libpq URL of a server on which the tests may create databases."""
    configured = os.environ.get("ATHOS_TEST_DATABASE_URL")
    if configured:
        yield db.as_libpq_url(configured)
        return
    import pgserver

    # Not under pytest's basetemp: a concurrent pytest session prunes old basetemps, and
    # would delete a running server's data directory.
    pgdata = tempfile.mkdtemp(prefix="athos-test-pg-")
    server = pgserver.get_server(pgdata, cleanup_mode="delete")
    try:
        yield db.as_libpq_url(server.get_uri())
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def test_database(
    postgres_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DatabaseUnderTest]:
    name, url = create_database(postgres_server)
    database = DatabaseUnderTest(url=url)
    use_settings(
        Settings(
            database_url=database.sqlalchemy_url,
            master_secret=TEST_MASTER_SECRET,
            data_dir=tmp_path_factory.mktemp("athos-data"),
            _env_file=None,
        )
    )
    db.migrate(database.sqlalchemy_url)
    try:
        yield database
    finally:
        drop_database(postgres_server, name)


@pytest.fixture(autouse=True)
def _clean_tables(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test starts with empty tables (truncated as the owner, outside RLS)."""
    yield
    if "test_database" not in request.fixturenames:
        return
    database: DatabaseUnderTest = request.getfixturevalue("test_database")
    with psycopg.connect(database.url, autocommit=True) as conn:
        tables = tenant_tables(conn)
        if tables:
            conn.execute(
                sql.SQL("TRUNCATE {} CASCADE").format(
                    sql.SQL(", ").join(map(sql.Identifier, tables))
                )
            )


@pytest.fixture
def owner_conn(test_database: DatabaseUnderTest) -> Iterator[psycopg.Connection]:
    """A connection as the tables' owner, for assertions the application role may not make."""
    with psycopg.connect(test_database.url, autocommit=True) as conn:
        yield conn


@pytest.fixture
async def app(test_database: DatabaseUnderTest) -> AsyncIterator[object]:
    from athos_identity.app import create_app

    yield create_app()


@pytest.fixture
async def client(app: object) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def tenant(test_database: DatabaseUnderTest) -> TenantKeys:
    return await create_tenant("Acme")


@pytest.fixture
async def other_tenant(test_database: DatabaseUnderTest) -> TenantKeys:
    return await create_tenant("Globex")


@pytest.fixture
def pg_dump(test_database: DatabaseUnderTest):
    """A function returning the whole database as SQL text (schema and data)."""
    import subprocess

    def dump() -> str:
        return subprocess.run(
            [pg_dump_binary(), "--no-owner", test_database.url],
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    return dump
