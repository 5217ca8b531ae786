"""All SQL of the audit log."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from athos_identity.audit.models import AuditEvent


async def add_event(session: AsyncSession, event: AuditEvent) -> None:
    session.add(event)
    await session.flush()


async def list_events(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None = None,
    action: str | None = None,
) -> list[AuditEvent]:
    """Newest first; `before` is the (at, id) of the last event of the previous page."""
    query = select(AuditEvent).where(AuditEvent.tenant_id == tenant_id)
    if before is not None:
        query = query.where(tuple_(AuditEvent.at, AuditEvent.id) < tuple_(*before))
    if action is not None:
        query = query.where(AuditEvent.action == action)
    query = query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
    return list((await session.scalars(query)).all())
