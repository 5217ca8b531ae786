from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from athos_identity.audit import service
from athos_identity.audit.schemas import AuditAction, AuditPage
from athos_identity.tenants.deps import AdminCaller, Session

router = APIRouter(prefix="/v1", tags=["audit"])


@router.get(
    "/audit",
    responses={
        401: {"description": "Missing, unknown or revoked API key"},
        403: {"description": "The key lacks the admin scope"},
        422: {"description": "Bad limit or cursor"},
    },
)
async def list_audit_events(
    session: Session,
    caller: AdminCaller,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    action: AuditAction | None = None,
) -> AuditPage:
    """The tenant's audit log, newest first: who (API key id; null for Shopify callbacks
    and scheduled work), what, on which object, when, with counts. Pass `next_cursor` back
    as `cursor` for the next page."""
    return await service.list_events(session, caller.tenant_id, limit, cursor, action)
