from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Header, Request

from athos_identity.connectors import service as connectors
from athos_identity.connectors.bigcommerce import service, webhooks
from athos_identity.connectors.bigcommerce.tasks import queue_apply_hooks
from athos_identity.connectors.routes import NOT_FOUND, PROBLEMS
from athos_identity.connectors.schemas import (
    BigCommerceCredentialsOut,
    BigCommerceCredentialsUpdate,
    ConnectorOut,
)
from athos_identity.tenants.deps import AdminCaller, Session

router = APIRouter(prefix="/v1", tags=["bigcommerce"])


@router.put(
    "/connectors/{connector_id}/bigcommerce/credentials",
    responses={
        **PROBLEMS,
        **NOT_FOUND,
        409: {"description": "Not a BigCommerce connector, or the store has a connector"},
        422: {"description": "Bad token or API path, or Customers/Orders permission missing"},
        503: {"description": "BigCommerce unreachable; nothing saved"},
    },
)
async def put_credentials(
    connector_id: uuid.UUID,
    body: BigCommerceCredentialsUpdate,
    session: Session,
    caller: AdminCaller,
) -> BigCommerceCredentialsOut:
    """Save (or replace) the store's API token, after checking it with BigCommerce.

    The token is checked, then each permission is probed; Customers and Orders are
    required (422 names what to set to Read-only, nothing is saved). A replacement is
    validated before it takes the previous token's place; data and sync state are kept.
    Customer and order hooks are (re-)registered."""
    return await service.put_credentials(session, caller.tenant_id, connector_id, body)


@router.delete(
    "/connectors/{connector_id}/bigcommerce/credentials",
    responses={**PROBLEMS, **NOT_FOUND, 409: {"description": "Not a BigCommerce connector"}},
)
async def delete_credentials(
    connector_id: uuid.UUID, session: Session, caller: AdminCaller
) -> ConnectorOut:
    """Forget the token: pulls stop, the connector's identity and sales data are purged."""
    connector = await service.delete_credentials(session, caller.tenant_id, connector_id)
    return await connectors.to_out(session, connector)


@router.post(
    "/connectors/{connector_id}/bigcommerce/check",
    responses={**PROBLEMS, **NOT_FOUND, 409: {"description": "No token stored"}},
)
async def check_credentials(
    connector_id: uuid.UUID, session: Session, caller: AdminCaller
) -> ConnectorOut:
    """Test the stored token now; a rejected token moves the connector to
    needs_reauthorization (the answer is still 200: read `state` and `last_error`)."""
    connector = await service.check_credentials(session, caller.tenant_id, connector_id)
    return await connectors.to_out(session, connector)


@router.post(
    "/webhooks/bigcommerce/{connector_id}",
    responses={401: {"description": "Missing or wrong webhook secret"}},
)
async def receive_webhook(
    connector_id: uuid.UUID,
    request: Request,
    session: Session,
    background: BackgroundTasks,
    secret: Annotated[str | None, Header(alias=service.WEBHOOK_SECRET_HEADER)] = None,
) -> dict[str, str]:
    """BigCommerce hook deliveries (ids only), authenticated by the connector's secret
    header; recorded once, then a job fetches and stores the records they name."""
    body = await request.body()
    received = await webhooks.receive(session, connector_id, secret, body)
    if received.status == "recorded" and received.tenant_id is not None:
        # After the response, so after the delivery is committed: the job must find it.
        background.add_task(queue_apply_hooks, received.tenant_id, connector_id)
    return {"status": received.status}
