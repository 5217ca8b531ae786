"""Sync runs: start, watch, cancel.

Starting a run commits the run before its job is queued (a worker must find it), so this
module opens its own transactions, like a job wrapper.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from procrastinate.exceptions import AlreadyEnqueued
from sqlalchemy.ext.asyncio import AsyncSession

from athos_identity.audit import service as audit
from athos_identity.connectors import service as connectors
from athos_identity.db import tenant_transaction, transaction
from athos_identity.jobs import open_jobs
from athos_identity.kit.errors import Conflict, NotFound
from athos_identity.sync import repository
from athos_identity.sync.models import SyncRun
from athos_identity.sync.schemas import RunStatus, SyncMode, SyncRunOut

log = logging.getLogger(__name__)


async def start_run(tenant_id: uuid.UUID, connector_id: uuid.UUID, mode: SyncMode) -> SyncRun:
    """Create a queued run and its job; 409 when the store already has one queued or running."""
    async with tenant_transaction(tenant_id) as session:
        connector = await connectors.get_connector(session, tenant_id, connector_id)
        connectors.require_usable(connector)
        try:
            run = await repository.insert_run(session, tenant_id, connector_id, mode.value)
        except repository.ActiveRunExists as exists:
            raise Conflict(
                f"A sync of this connector is already queued or running: {exists.run_id}.",
                run_id=str(exists.run_id),
            ) from None
        await audit.record(
            session, tenant_id, "sync.start", run.id, only_by_key=True, full=mode.value == "full"
        )
    job_id = await _queue_pull(tenant_id, connector_id, run.id)
    async with tenant_transaction(tenant_id) as session:
        await repository.update_run(session, tenant_id, run.id, job_id=job_id)
    run.job_id = job_id
    return run


async def _queue_pull(tenant_id: uuid.UUID, connector_id: uuid.UUID, run_id: uuid.UUID) -> int:
    from athos_identity.sync.tasks import pull

    await open_jobs()
    try:
        return await pull.configure(
            lock=f"connector:{connector_id}", queueing_lock=f"pull:{connector_id}"
        ).defer_async(tenant_id=str(tenant_id), run_id=str(run_id))
    except AlreadyEnqueued:
        await _end(tenant_id, run_id, RunStatus.failed, "a pull of this store is already queued")
        raise Conflict("A pull of this connector is already queued.") from None


async def _end(
    tenant_id: uuid.UUID, run_id: uuid.UUID, status: RunStatus, reason: str | None
) -> None:
    async with tenant_transaction(tenant_id) as session:
        await repository.update_run(
            session, tenant_id, run_id, status=status.value, last_error=reason,
            finished_at=datetime.now(UTC),
        )  # fmt: skip


async def get_run(session: AsyncSession, tenant_id: uuid.UUID, run_id: uuid.UUID) -> SyncRun:
    run = await repository.get_run(session, tenant_id, run_id)
    if run is None:
        raise NotFound("No sync run with this id.")
    return run


async def list_runs(
    session: AsyncSession, tenant_id: uuid.UUID, connector_id: uuid.UUID, limit: int
) -> list[SyncRun]:
    await connectors.get_connector(session, tenant_id, connector_id)  # 404 for others' ids
    return await repository.list_runs(session, tenant_id, connector_id, limit)


async def cancel_run(tenant_id: uuid.UUID, run_id: uuid.UUID) -> SyncRun:
    """Stop a queued or running pull; pages already written stay. Ended runs are left as is."""
    async with tenant_transaction(tenant_id) as session:
        run = await repository.get_run(session, tenant_id, run_id, for_update=True)
        if run is None:
            raise NotFound("No sync run with this id.")
        if run.status in (RunStatus.queued, RunStatus.running):
            await repository.update_run(
                session, tenant_id, run_id, status="cancelled", finished_at=datetime.now(UTC)
            )
            await audit.record(session, tenant_id, "sync.cancel", run_id)
        job_id = run.job_id
    if job_id is not None:
        jobs = await open_jobs()
        # A queued job is cancelled outright; a running one is asked to abort (it also
        # sees the run's status at its next page).
        await jobs.job_manager.cancel_job_by_id_async(job_id, abort=True)
    async with tenant_transaction(tenant_id) as session:
        return await get_run(session, tenant_id, run_id)


async def start_due_incremental_runs() -> int:
    async with transaction() as session:
        due = await repository.connectors_due(session)
    started = 0
    for tenant_id, connector_id in due:
        try:
            await start_run(tenant_id, connector_id, SyncMode.incremental)
            started += 1
        except Conflict:
            continue  # one is queued or running already
    return started


def to_out(run: SyncRun) -> SyncRunOut:
    rate = eta = None
    if run.started_at is not None:
        end = run.finished_at or datetime.now(UTC)
        elapsed = (end - run.started_at).total_seconds()
        if elapsed > 0 and run.records:
            rate = round(run.records / elapsed, 1)
        if rate and run.estimated_total and run.finished_at is None:
            eta = round(max(0, run.estimated_total - run.records) / rate, 1)
    return SyncRunOut.model_validate(run).model_copy(
        update={"records_per_second": rate, "eta_seconds": eta}
    )
