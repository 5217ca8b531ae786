"""Job wrappers of the sync domain (thin: the engine does the work; one place commits)."""

from __future__ import annotations

import logging
import uuid

import httpx
import procrastinate
import psycopg
import sqlalchemy.exc
from procrastinate.job_context import JobContext

from athos_identity.jobs import app
from athos_identity.kit.errors import AppError
from athos_identity.settings import get_settings
from athos_identity.sync import engine, service
from athos_identity.sync.sources import TransientSourceError

log = logging.getLogger(__name__)

# Worth another try, later, from the last checkpoint. Everything else (a refused
# credential, a revoked connector, a bug) fails the run at once with its reason.
# Database trouble (a restart, a dropped connection, a failover) comes raw from psycopg on
# the lock's connection and wrapped by SQLAlchemy everywhere else.
TRANSIENT = (
    TransientSourceError,
    httpx.TransportError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
)


def _reason(exc: BaseException) -> str:
    # AppError details are written to be shown; other messages may quote data.
    return exc.detail if isinstance(exc, AppError) else type(exc).__name__


PULLS_QUEUE = "pulls"
SCHEDULER_QUEUE = "scheduler"


@app.task(
    name="sync.pull",
    queue=PULLS_QUEUE,
    pass_context=True,
    retry=procrastinate.RetryStrategy(
        max_attempts=get_settings().sync_max_attempts,
        exponential_wait=2,
        retry_exceptions=set(TRANSIENT),
    ),
)
async def pull(context: JobContext, tenant_id: str, run_id: str) -> None:
    tenant, run = uuid.UUID(tenant_id), uuid.UUID(run_id)
    try:
        await engine.run_pull(tenant, run, should_abort=context.should_abort)
    except engine.RunCancelled:
        log.info("sync run cancelled", extra={"run_id": run})
    except engine.RunGone:
        # Runs are committed before their job is queued, so a missing run was purged with
        # its connector (revoked, credentials deleted): nothing left to pull.
        log.info("sync run gone with its connector's data", extra={"run_id": run})
    except TRANSIENT as exc:
        if context.job.attempts + 1 >= get_settings().sync_max_attempts:
            await engine.fail_run(tenant, run, f"gave up after retries: {_reason(exc)}")
        else:
            await engine.note_error(tenant, run, f"retrying: {_reason(exc)}")
        raise
    except Exception as exc:
        log.warning("sync run failed: %s", type(exc).__name__, extra={"run_id": run})
        await engine.fail_run(tenant, run, _reason(exc))


@app.periodic(cron=f"*/{get_settings().sync_interval_minutes} * * * *")
@app.task(
    name="sync.schedule_incremental",
    queue=SCHEDULER_QUEUE,
    queueing_lock="sync.schedule_incremental",
)
async def schedule_incremental(timestamp: int) -> None:
    """Start an incremental pull for every granted store that has none running."""
    started = await service.start_due_incremental_runs()
    log.info("scheduled %d incremental pulls", started)


# croniter reads a sixth field as seconds: every 20 s, all day.
@app.periodic(cron="* * * * * */20")
@app.task(
    name="sync.retry_stalled",
    queue=SCHEDULER_QUEUE,
    queueing_lock="sync.retry_stalled",
    pass_context=True,
)
async def retry_stalled(context: JobContext, timestamp: int) -> None:
    await retry_stalled_jobs(context.app)


async def retry_stalled_jobs(jobs_app: procrastinate.App) -> int:
    """Jobs of workers that stopped sending heartbeats (killed) go back to the queue,
    releasing their store's lock; the run resumes from its checkpoint."""
    stalled = await jobs_app.job_manager.get_stalled_jobs(
        seconds_since_heartbeat=get_settings().worker_stalled_seconds
    )
    count = 0
    for job in stalled:
        await jobs_app.job_manager.retry_job(job)
        count += 1
    if count:
        log.warning("retried %d stalled jobs", count)
    return count
