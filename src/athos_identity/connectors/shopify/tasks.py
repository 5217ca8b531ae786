"""Job wrappers of the Shopify connector."""

from __future__ import annotations

import contextlib
import logging
import uuid

import procrastinate

from athos_identity.connectors.shopify import service
from athos_identity.db import tenant_transaction
from athos_identity.jobs import app

log = logging.getLogger(__name__)


class RemoteRevokePending(Exception):
    """Shopify still could not be told: try again later."""


@app.task(
    name="shopify.retry_revoke",
    queue="hooks",
    retry=procrastinate.RetryStrategy(
        max_attempts=10, exponential_wait=3, retry_exceptions={RemoteRevokePending}
    ),
)
async def retry_revoke(tenant_id: str, connector_id: str, uninstall: bool) -> None:
    """Finish a revoke at Shopify that could not reach it (our copy is already gone)."""
    async with tenant_transaction(uuid.UUID(tenant_id)) as session:
        result = await service.finish_remote_revoke(
            session, uuid.UUID(tenant_id), uuid.UUID(connector_id), uninstall
        )
    if result is None:
        log.info("Shopify revoke: nothing left to finish", extra={"connector_id": connector_id})
        return
    if result.retry_remote:
        raise RemoteRevokePending(connector_id)
    log.info("Shopify revoke finished remotely", extra={"connector_id": connector_id})


async def queue_retry_revoke(
    tenant_id: uuid.UUID, connector_id: uuid.UUID, uninstall: bool
) -> None:
    from athos_identity.jobs import open_jobs

    await open_jobs()
    with contextlib.suppress(procrastinate.exceptions.AlreadyEnqueued):
        await retry_revoke.configure(
            queueing_lock=f"shopify-revoke:{connector_id}", schedule_in={"seconds": 30}
        ).defer_async(tenant_id=str(tenant_id), connector_id=str(connector_id), uninstall=uninstall)
