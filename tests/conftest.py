"""Test harness: one real PostgreSQL per test session, migrated once; every test isolated.

The server is ATHOS_TEST_DATABASE_URL when set (a fresh database is created on it and
dropped afterwards), otherwise an embedded pgserver in a temporary directory.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from athos_identity import db
from athos_identity.settings import Settings, use_settings

TEST_MASTER_SECRET = "test-master-secret-" + "0" * 32


@dataclass(frozen=True)
class DatabaseUnderTest:
    url: str  # libpq form, for psycopg and pg_dump

    @property
    def sqlalchemy_url(self) -> str:
        return db.as_psycopg_url(self.url)


def _create_database(server_url: str) -> tuple[str, str]:
    name = f"athos_test_{secrets.token_hex(4)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    return name, url


def _drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A libpq URL of a server on which the tests may create databases."""
    configured = os.environ.get("ATHOS_TEST_DATABASE_URL")
    if configured:
        yield db.as_libpq_url(configured)
        return
    import pgserver

    server = pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="delete")
    try:
        yield db.as_libpq_url(server.get_uri())
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def test_database(
    postgres_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DatabaseUnderTest]:
    name, url = _create_database(postgres_server)
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
        _drop_database(postgres_server, name)


def _tenant_tables(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT tablename FROM pg_tables"
        " WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
    ).fetchall()
    return [r[0] for r in rows]


@pytest.fixture(autouse=True)
def _clean_tables(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test starts with empty tables (truncated as the owner, outside RLS)."""
    yield
    if "test_database" not in request.fixturenames:
        return
    database: DatabaseUnderTest = request.getfixturevalue("test_database")
    with psycopg.connect(database.url, autocommit=True) as conn:
        tables = _tenant_tables(conn)
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


@dataclass(frozen=True)
class TenantKeys:
    tenant_id: uuid.UUID
    admin_key: str

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}


async def create_tenant(name: str = "Acme", region: str | None = "US") -> TenantKeys:
    from athos_identity.tenants import service

    async with db.transaction() as session:
        tenant, _, token = await service.create_tenant(session, name, region)
    return TenantKeys(tenant_id=tenant.tenant_id, admin_key=token)


async def create_key(tenant_id: uuid.UUID, *scopes: str) -> str:
    from athos_identity.tenants import service
    from athos_identity.tenants.schemas import Scope

    async with db.tenant_transaction(tenant_id) as session:
        _, token = await service.create_key(session, tenant_id, [Scope(s) for s in scopes])
    return token


@pytest.fixture
async def tenant(test_database: DatabaseUnderTest) -> TenantKeys:
    return await create_tenant("Acme")


@pytest.fixture
async def other_tenant(test_database: DatabaseUnderTest) -> TenantKeys:
    return await create_tenant("Globex")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def pg_dump_binary() -> str:
    """pgserver's pg_dump: new enough for both the embedded server and the system's."""
    import pgserver

    return str(Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_dump")


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
