"""Helpers shared by the tests (fixtures live in conftest.py).

A module of its own name: `from support import ...` would find whichever conftest.py
was imported last (tests/sandbox has one too).
"""

from __future__ import annotations

import secrets
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from athos_identity import db

TEST_MASTER_SECRET = "test-master-secret-" + "0" * 32


@dataclass(frozen=True)
class DatabaseUnderTest:
    url: str  # libpq form, for psycopg and pg_dump

    @property
    def sqlalchemy_url(self) -> str:
        return db.as_psycopg_url(self.url)


def create_database(server_url: str) -> tuple[str, str]:
    name = f"athos_test_{secrets.token_hex(4)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    return name, url


def drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def tenant_tables(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT tablename FROM pg_tables"
        " WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
    ).fetchall()
    return [r[0] for r in rows]


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


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def pg_dump_binary() -> str:
    """pgserver's pg_dump: new enough for both the embedded server and the system's."""
    import pgserver

    return str(Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_dump")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
