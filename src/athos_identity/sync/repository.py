"""All SQL of sync runs and cursors."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from athos_identity.sync.models import SyncRun

ACTIVE_STATUSES = ("queued", "running")


class ActiveRunExists(Exception):
    def __init__(self, run_id: uuid.UUID) -> None:
        super().__init__(str(run_id))
        self.run_id = run_id


async def insert_run(
    session: AsyncSession, tenant_id: uuid.UUID, connector_id: uuid.UUID, mode: str
) -> SyncRun:
    run = SyncRun(tenant_id=tenant_id, id=uuid.uuid4(), connector_id=connector_id, mode=mode)
    try:
        async with session.begin_nested():
            session.add(run)
            await session.flush()
    except IntegrityError:  # sync_runs_one_active: one queued or running run per connector
        active = await active_run(session, tenant_id, connector_id)
        raise ActiveRunExists(active.id if active else run.id) from None
    await session.refresh(run)
    return run


async def active_run(
    session: AsyncSession, tenant_id: uuid.UUID, connector_id: uuid.UUID
) -> SyncRun | None:
    result = await session.execute(
        select(SyncRun).where(
            SyncRun.tenant_id == tenant_id,
            SyncRun.connector_id == connector_id,
            SyncRun.status.in_(ACTIVE_STATUSES),
        )
    )
    return result.scalar_one_or_none()


async def get_run(
    session: AsyncSession, tenant_id: uuid.UUID, run_id: uuid.UUID, *, for_update: bool = False
) -> SyncRun | None:
    query = select(SyncRun).where(SyncRun.tenant_id == tenant_id, SyncRun.id == run_id)
    if for_update:
        query = query.with_for_update()
    result = await session.execute(query.execution_options(populate_existing=True))
    return result.scalar_one_or_none()


async def list_runs(
    session: AsyncSession, tenant_id: uuid.UUID, connector_id: uuid.UUID, limit: int
) -> list[SyncRun]:
    result = await session.execute(
        select(SyncRun)
        .where(SyncRun.tenant_id == tenant_id, SyncRun.connector_id == connector_id)
        .order_by(SyncRun.created_at.desc())
        .limit(limit)
    )
    return list(result.scalars())


async def update_run(
    session: AsyncSession, tenant_id: uuid.UUID, run_id: uuid.UUID, **values: Any
) -> None:
    """Set columns; `add_<column>=n` adds n to a counter instead of replacing it."""
    changes: dict[str, Any] = {}
    for name, value in values.items():
        if name.startswith("add_"):
            column = getattr(SyncRun, name.removeprefix("add_"))
            changes[column.key] = column + value
        else:
            changes[name] = value
    await session.execute(
        update(SyncRun)
        .where(SyncRun.tenant_id == tenant_id, SyncRun.id == run_id)
        .values(**changes)
        .execution_options(synchronize_session=False)
    )


async def get_cursor(
    session: AsyncSession, tenant_id: uuid.UUID, connector_id: uuid.UUID, stream: str
) -> datetime | None:
    result = await session.execute(
        text(
            "SELECT high_water FROM sync_cursors WHERE tenant_id = :tenant_id"
            " AND connector_id = :connector_id AND stream = :stream"
        ),
        {"tenant_id": tenant_id, "connector_id": connector_id, "stream": stream},
    )
    return result.scalar_one_or_none()


async def advance_cursor(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    connector_id: uuid.UUID,
    stream: str,
    high_water: datetime,
) -> None:
    await session.execute(
        text(
            "INSERT INTO sync_cursors (tenant_id, connector_id, stream, high_water)"
            " VALUES (:tenant_id, :connector_id, :stream, :high_water)"
            " ON CONFLICT (tenant_id, connector_id, stream) DO UPDATE"
            " SET high_water = greatest(sync_cursors.high_water, EXCLUDED.high_water),"
            "     updated_at = now()"
        ),
        {
            "tenant_id": tenant_id,
            "connector_id": connector_id,
            "stream": stream,
            "high_water": high_water,
        },
    )


async def connectors_due(session: AsyncSession) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(tenant, connector) of every granted platform connector, across tenants.

    Only the scheduler calls this: it flags its transaction with `app.scheduler`, which a
    policy of its own lets read connectors of every tenant (migration 0005)."""
    await session.execute(text("SELECT set_config('app.scheduler', 'on', true)"))
    result = await session.execute(
        text(
            "SELECT tenant_id, id FROM connectors"
            " WHERE state = 'granted' AND platform IN ('shopify', 'bigcommerce')"
        )
    )
    return [(row[0], row[1]) for row in result]
