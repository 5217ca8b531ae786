"""Database access: the engine, tenant-scoped sessions, the embedded Postgres, migrations.

The API and the workers act as the `app_role` database role, which does not own the
tables: row-level security (FORCE'd) then confines every query to the tenant named by
`app.tenant_id`, set with SET LOCAL at the start of each tenant-scoped transaction.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from psycopg_pool import AsyncConnectionPool
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from athos_identity.settings import Settings, get_settings

log = logging.getLogger(__name__)

_embedded: Any = None  # the pgserver handle; kept so the server lives as long as the process
_engine: AsyncEngine | None = None
_fast_pool: AsyncConnectionPool | None = None
_sessions: async_sessionmaker[AsyncSession] | None = None


def database_url(settings: Settings | None = None) -> str:
    """The SQLAlchemy URL to use, starting the embedded Postgres when none is configured."""
    settings = settings or get_settings()
    if settings.database_url:
        return as_psycopg_url(settings.database_url)
    return as_psycopg_url(_start_embedded(settings.data_dir))


def as_psycopg_url(url: str) -> str:
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def as_libpq_url(url: str) -> str:
    """The same URL without SQLAlchemy's driver suffix, for psycopg and pg_dump."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def describe(url: str) -> str:
    """Where a URL points, for start-up messages: never the password."""
    parsed = make_url(url)
    host = parsed.host or parsed.query.get("host", "local socket")
    return f"{parsed.username or 'default user'}@{host}/{parsed.database}"


def database_in_use() -> tuple[str, str]:
    """The URL to use (starting the embedded server if none is configured), and the line
    that says at start-up which one it is."""
    url = database_url()
    kind = "configured" if get_settings().database_url else "embedded"
    return url, f"database: {kind} PostgreSQL at {describe(url)}"


def _start_embedded(data_dir: Path) -> str:
    global _embedded
    if _embedded is None:
        import pgserver  # imported late: only the embedded mode needs it

        pgdata = (data_dir / "postgres").resolve()
        pgdata.mkdir(parents=True, exist_ok=True)
        # pgserver reuses a server another process already started on this directory.
        _embedded = pgserver.get_server(pgdata, cleanup_mode="stop")
        log.info("using the embedded PostgreSQL in %s", pgdata)
    return str(_embedded.get_uri())


def create_engine(
    url: str, settings: Settings | None = None, *, as_app_role: bool = True
) -> AsyncEngine:
    """An engine acting as the non-owner application role (or as the login user, for DDL)."""
    settings = settings or get_settings()
    # Custom plans always: statements are prepared after a few runs, and a generic plan
    # made while a table was small (a pull's first pages) stays a sequential scan as the
    # table grows; one order-line delete went from ~5 to ~200 ms a page (bench/ingest.py).
    options = "-c plan_cache_mode=force_custom_plan"
    if as_app_role:
        options += f" -c role={settings.app_role}"
    connect_args: dict[str, Any] = {"connect_timeout": 5, "options": options}
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
        hide_parameters=True,  # parameters never reach logs, even at DEBUG
        connect_args=connect_args,
    )


def app_database_url(settings: Settings | None = None) -> str:
    """The URL the API and workers read and write tenant data with: the separate login
    role when one is configured, otherwise the database URL (acting as `app_role`)."""
    settings = settings or get_settings()
    if settings.app_database_url:
        return as_psycopg_url(settings.app_database_url)
    return database_url(settings)


def _acts_through_set_role(settings: Settings) -> bool:
    # With a login role of its own, the connection IS a non-owner: no role to switch to,
    # and none it could switch back from (RESET ROLE stays that role).
    return not settings.app_database_url


def get_engine() -> AsyncEngine:
    global _engine, _sessions
    if _engine is None:
        settings = get_settings()
        _engine = create_engine(
            app_database_url(settings), settings, as_app_role=_acts_through_set_role(settings)
        )
        _sessions = async_sessionmaker(_engine, expire_on_commit=False)
    return _engine


def session_factory() -> async_sessionmaker[AsyncSession]:
    get_engine()
    assert _sessions is not None
    return _sessions


async def fast_pool() -> AsyncConnectionPool:
    """Plain psycopg connections (autocommit, as the application role) for the hot paths
    where SQLAlchemy's per-statement cost would dominate: identity look-ups."""
    global _fast_pool
    if _fast_pool is None:
        settings = get_settings()
        options = f"-c role={settings.app_role}" if _acts_through_set_role(settings) else ""
        pool = AsyncConnectionPool(
            as_libpq_url(app_database_url(settings)),
            min_size=1,
            max_size=settings.db_pool_size,
            kwargs={"autocommit": True, "options": options},
            open=False,
        )
        await pool.open()
        _fast_pool = pool
    return _fast_pool


async def dispose_engine() -> None:
    global _engine, _sessions, _fast_pool
    if _engine is not None:
        await _engine.dispose()
    if _fast_pool is not None:
        await _fast_pool.close()
    _engine = _sessions = _fast_pool = None


async def scope_to_tenant(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    """Confine the session's current transaction to one tenant's rows (RLS reads this)."""
    await session.execute(
        text("SELECT set_config('app.tenant_id', :tenant_id, true)"),
        {"tenant_id": str(tenant_id)},
    )


@asynccontextmanager
async def transaction() -> AsyncIterator[AsyncSession]:
    """One transaction, committed when the block succeeds; sees no tenant's rows until scoped."""
    async with session_factory()() as session, session.begin():
        yield session


@asynccontextmanager
async def tenant_transaction(tenant_id: uuid.UUID) -> AsyncIterator[AsyncSession]:
    """One transaction that sees only `tenant_id`'s rows; commits when the block succeeds."""
    async with transaction() as session:
        await scope_to_tenant(session, tenant_id)
        yield session


# --- migrations -----------------------------------------------------------------------


def migrations_dir() -> Path:
    candidates = [Path(__file__).resolve().parents[2] / "migrations", Path.cwd() / "migrations"]
    for candidate in candidates:
        if (candidate / "env.py").exists():
            return candidate
    raise FileNotFoundError("the migrations folder was not found next to the package or in cwd")


def alembic_config(url: str | None = None) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["database_url"] = url or database_url()
    config.attributes["app_role"] = get_settings().app_role
    return config


def migrate(url: str | None = None, revision: str = "head") -> None:
    """Bring the schema to `revision` (synchronous: Alembic runs its own event loop)."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("postgresql://unused")).get_current_head()
