"""Sync runs: start, watch, cancel.

Starting a run commits the run before its job is queued (a worker must find it; and the
application role, which writes runs, has no rights on the job queue's tables), so this
module opens its own transactions, like a job wrapper. A process that dies between the
two leaves a queued run without a job: the scheduler, and the next start of a pull of its
store, give it one (`queue_orphaned_run`).
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

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

# A queued run this old with no live job lost it (its starter died before queueing it):
# far above the milliseconds between the two, so a start in progress is never taken for one.
ORPHANED_AFTER = timedelta(minutes=2)
LIVE_JOB_STATUSES = ("todo", "doing")


async def start_run(tenant_id: uuid.UUID, connector_id: uuid.UUID, mode: SyncMode) -> SyncRun:
    """Create a queued run and its job; 409 when the store already has one queued or
    running, naming it."""
    try:
        run = await _create_run(tenant_id, connector_id, mode)
    except repository.ActiveRunExists as exists:
        await queue_orphaned_run(tenant_id, exists.run_id)
        raise Conflict(
            f"A sync of this connector is already queued or running: {exists.run_id}.",
            run_id=str(exists.run_id),
        ) from None
    try:
        job_id = await _queue_pull(connector_id, run.id, tenant_id)
    except AlreadyEnqueued:
        # A job whose run has ended (failed by hand, say) still waits in the queue.
        holder = await _run_holding_the_queue(connector_id)
        await _end(tenant_id, run.id, RunStatus.failed, "a pull of this store is already queued")
        raise Conflict(
            f"A pull of this connector is already queued: {holder or 'run unknown'}.",
            **({"run_id": str(holder)} if holder else {}),
        ) from None
    await _record_job(tenant_id, run.id, job_id)
    run.job_id = job_id
    return run


async def _create_run(tenant_id: uuid.UUID, connector_id: uuid.UUID, mode: SyncMode) -> SyncRun:
    async with tenant_transaction(tenant_id) as session:
        connector = await connectors.get_connector(session, tenant_id, connector_id)
        connectors.require_usable(connector)
        run = await repository.insert_run(session, tenant_id, connector_id, mode.value)
        full = mode is SyncMode.full
        await audit.record(session, tenant_id, "sync.start", run.id, only_by_key=True, full=full)
    return run


async def queue_orphaned_run(tenant_id: uuid.UUID, run_id: uuid.UUID) -> bool:
    """Give a job to a queued run that has been waiting without one; True if it had to."""
    async with tenant_transaction(tenant_id) as session:
        run = await repository.get_run(session, tenant_id, run_id)
        if run is None or run.status != RunStatus.queued:
            return False
        if datetime.now(UTC) - run.created_at < ORPHANED_AFTER:
            return False
        connector_id = run.connector_id
    if await _has_live_pull_job(connector_id):
        return False
    try:
        job_id = await _queue_pull(connector_id, run_id, tenant_id)
    except AlreadyEnqueued:  # queued a moment ago by someone else
        return False
    await _record_job(tenant_id, run_id, job_id)
    log.warning("queued the job of an orphaned sync run", extra={"run_id": run_id})
    return True


async def _queue_pull(connector_id: uuid.UUID, run_id: uuid.UUID, tenant_id: uuid.UUID) -> int:
    from athos_identity.sync.tasks import pull

    await open_jobs()
    return await pull.configure(
        lock=_pull_lock(connector_id), queueing_lock=_pull_queueing_lock(connector_id)
    ).defer_async(tenant_id=str(tenant_id), run_id=str(run_id))


def _pull_lock(connector_id: uuid.UUID) -> str:
    return f"connector:{connector_id}"


def _pull_queueing_lock(connector_id: uuid.UUID) -> str:
    return f"pull:{connector_id}"


async def _has_live_pull_job(connector_id: uuid.UUID) -> bool:
    jobs = await open_jobs()
    found = await jobs.job_manager.list_jobs_async(lock=_pull_lock(connector_id))
    return any(job.status in LIVE_JOB_STATUSES for job in found)


async def _run_holding_the_queue(connector_id: uuid.UUID) -> uuid.UUID | None:
    """The run of the job waiting in the queue for this connector (job arguments are ids)."""
    jobs = await open_jobs()
    found = await jobs.job_manager.list_jobs_async(
        queueing_lock=_pull_queueing_lock(connector_id), status="todo"
    )
    for job in found:
        run_id = job.task_kwargs.get("run_id")
        if isinstance(run_id, str):
            return uuid.UUID(run_id)
    return None


async def _record_job(tenant_id: uuid.UUID, run_id: uuid.UUID, job_id: int) -> None:
    async with tenant_transaction(tenant_id) as session:
        await repository.update_run(session, tenant_id, run_id, job_id=job_id)


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
            continue  # one is queued or running already (given its job if it lost it)
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
