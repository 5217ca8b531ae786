"""Job wrappers of the BigCommerce connector."""

from __future__ import annotations

import contextlib
import logging
import uuid

import procrastinate

from athos_identity.connectors.bigcommerce import hooks
from athos_identity.jobs import app
from athos_identity.sync.sources import TransientSourceError
from athos_identity.sync.tasks import TRANSIENT

log = logging.getLogger(__name__)


@app.task(
    name="bigcommerce.apply_hooks",
    queue="hooks",
    retry=procrastinate.RetryStrategy(
        max_attempts=6, exponential_wait=2, retry_exceptions={*TRANSIENT, TransientSourceError}
    ),
)
async def apply_hooks(tenant_id: str, connector_id: str) -> None:
    applied = await hooks.apply_pending(uuid.UUID(tenant_id), uuid.UUID(connector_id))
    log.info("applied %d bigcommerce hooks", applied, extra={"connector_id": connector_id})


async def queue_apply_hooks(tenant_id: uuid.UUID, connector_id: uuid.UUID) -> None:
    """Queue one job per connector; hooks arriving while it waits ride along with it."""
    from athos_identity.jobs import open_jobs

    await open_jobs()
    # AlreadyEnqueued: the queued job will see this delivery too.
    with contextlib.suppress(procrastinate.exceptions.AlreadyEnqueued):
        await apply_hooks.configure(queueing_lock=f"hooks:{connector_id}").defer_async(
            tenant_id=str(tenant_id), connector_id=str(connector_id)
        )
