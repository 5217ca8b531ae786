from __future__ import annotations

import uuid

from fastapi import APIRouter, Query, status

from athos_identity.sync import service
from athos_identity.sync.schemas import SyncAccepted, SyncCreate, SyncRunOut
from athos_identity.tenants.deps import AdminCaller, Session

router = APIRouter(prefix="/v1", tags=["syncs"])

PROBLEMS = {
    401: {"description": "Missing, unknown or revoked API key"},
    403: {"description": "The key lacks the admin scope"},
    404: {"description": "No such connector or run"},
}


@router.post(
    "/connectors/{connector_id}/syncs",
    status_code=status.HTTP_202_ACCEPTED,
    responses={**PROBLEMS, 409: {"description": "A sync is already queued or running, or the "
                                 "connector is not granted"}},
)  # fmt: skip
async def start_sync(
    connector_id: uuid.UUID, body: SyncCreate, caller: AdminCaller
) -> SyncAccepted:
    """Queue a pull of the store's customers and orders; watch it with GET /v1/syncs/{id}."""
    run = await service.start_run(caller.tenant_id, connector_id, body.mode)
    return SyncAccepted(id=run.id, status=run.status)


@router.get("/syncs/{run_id}", responses=PROBLEMS)
async def get_sync(run_id: uuid.UUID, session: Session, caller: AdminCaller) -> SyncRunOut:
    """A run's progress: pages, records, skipped identifiers, estimate, rate, ETA, last error."""
    return service.to_out(await service.get_run(session, caller.tenant_id, run_id))


@router.get("/connectors/{connector_id}/syncs", responses=PROBLEMS)
async def list_syncs(
    connector_id: uuid.UUID,
    session: Session,
    caller: AdminCaller,
    limit: int = Query(default=20, ge=1, le=200),
) -> list[SyncRunOut]:
    """The connector's runs, newest first."""
    runs = await service.list_runs(session, caller.tenant_id, connector_id, limit)
    return [service.to_out(r) for r in runs]


@router.post("/syncs/{run_id}/cancel", responses=PROBLEMS)
async def cancel_sync(run_id: uuid.UUID, caller: AdminCaller) -> SyncRunOut:
    """Stop a queued or running sync; what it already wrote stays."""
    return service.to_out(await service.cancel_run(caller.tenant_id, run_id))
