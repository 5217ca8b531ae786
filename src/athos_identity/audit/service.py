"""Audit rules: one call where an action happens, in the action's own transaction.

`key_id` is the API key of the request (from the context the authentication dependency
set); None when no key acted: a Shopify callback or webhook, a scheduled job. `details`
hold counts and flags only — never an identifier, a token or free text.
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from athos_identity import observability
from athos_identity.audit import repository
from athos_identity.audit.models import AuditEvent
from athos_identity.audit.schemas import AuditAction, AuditEventOut, AuditPage
from athos_identity.kit.errors import InvalidInput


async def record(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    action: AuditAction | str,
    target_id: object = None,
    *,
    only_by_key: bool = False,
    **details: int | bool,
) -> None:
    """Add an event to the caller's transaction (it commits or rolls back with the action).

    With `only_by_key`, nothing is recorded when no API key acted (scheduled work)."""
    key_id = observability.current_key_id()
    if only_by_key and key_id is None:
        return
    for name, value in details.items():
        if not isinstance(value, int | bool):  # a string could carry anything
            raise TypeError(f"audit detail {name} must be a count or a flag")
    await repository.add_event(
        session,
        AuditEvent(
            tenant_id=tenant_id,
            id=uuid.uuid4(),
            key_id=key_id,
            action=AuditAction(action).value,
            target_id=str(target_id) if target_id is not None else None,
            request_id=observability.request_id_var.get(),
            details=dict(details),
        ),
    )


def _cursor(event: AuditEventOut) -> str:
    raw = f"{event.at.isoformat()}|{event.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _parse_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, event_id = raw.split("|")
        return datetime.fromisoformat(at), uuid.UUID(event_id)
    except ValueError:
        raise InvalidInput(
            "cursor: not a cursor this API returned",
            errors=[{"field": "query.cursor", "message": "not a cursor this API returned"}],
        ) from None


async def list_events(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    limit: int,
    cursor: str | None,
    action: AuditAction | None,
) -> AuditPage:
    before = _parse_cursor(cursor) if cursor else None
    rows = await repository.list_events(
        session, tenant_id, limit + 1, before, action.value if action else None
    )
    events = [AuditEventOut.model_validate(r) for r in rows[:limit]]
    more = len(rows) > limit
    return AuditPage(events=events, next_cursor=_cursor(events[-1]) if more else None)
