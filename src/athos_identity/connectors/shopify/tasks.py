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


# --- whole-shop webhooks (app/uninstalled, shop/redact) --------------------------------------


@app.task(
    name="shopify.apply_shop_events",
    queue="hooks",
    # Any failure is worth another try: the purge is idempotent and one transaction.
    retry=procrastinate.RetryStrategy(max_attempts=8, exponential_wait=2),
)
async def apply_shop_events(tenant_id: str, connector_id: str) -> None:
    """Purge a shop's data for the app/uninstalled and shop/redact webhooks it recorded."""
    # At call time: webhooks.py imports this module to queue the task.
    from athos_identity.connectors.shopify import webhooks

    applied = await webhooks.apply_shop_events(uuid.UUID(tenant_id), uuid.UUID(connector_id))
    log.info("applied %d Shopify shop webhooks", applied, extra={"connector_id": connector_id})


async def queue_shop_events(tenant_id: uuid.UUID, connector_id: uuid.UUID) -> None:
    """One queued job per connector; deliveries recorded while it waits ride along with it."""
    from athos_identity.jobs import open_jobs

    await open_jobs()
    with contextlib.suppress(procrastinate.exceptions.AlreadyEnqueued):
        await apply_shop_events.configure(
            queueing_lock=f"shopify-shop-events:{connector_id}"
        ).defer_async(tenant_id=str(tenant_id), connector_id=str(connector_id))
