"""A store's client for background work (pull jobs), outside any request.

    async with connector_client(tenant_id, connector_id) as bigcommerce:
        page = await bigcommerce.customers_page(modified_since=cursor)

The token is read (and decrypted) in a short transaction of its own: no transaction stays
open while BigCommerce is called. If BigCommerce answers 401 inside the block, the connector
is moved to `needs_reauthorization` with the reason in a transaction that commits even
though the caller's work failed, and `CredentialRejected` is re-raised: the job must stop,
not retry (DESIGN.md §8). Like a job wrapper, this module commits its own transactions.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from athos_identity import db
from athos_identity.connectors import service as connectors
from athos_identity.connectors.bigcommerce import service
from athos_identity.connectors.bigcommerce.client import BigCommerceClient, CredentialRejected


@asynccontextmanager
async def connector_client(
    tenant_id: uuid.UUID, connector_id: uuid.UUID
) -> AsyncIterator[BigCommerceClient]:
    """The connector's client; raises ConnectorNotUsable unless the connector is granted."""
    async with db.tenant_transaction(tenant_id) as session:
        client = await service.open_client(session, tenant_id, connector_id)
    try:
        async with client:
            yield client
    except CredentialRejected as rejected:
        await record_rejection(tenant_id, connector_id, rejected.detail)
        raise


async def record_rejection(tenant_id: uuid.UUID, connector_id: uuid.UUID, reason: str) -> None:
    """Commit `needs_reauthorization` for a connector whose token BigCommerce refused."""
    async with db.tenant_transaction(tenant_id) as session:
        await connectors.mark_needs_reauthorization(session, tenant_id, connector_id, reason)
