from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from athos_identity.connectors import service
from athos_identity.connectors.schemas import ConnectorCreate, ConnectorOut, ConnectorUpdate
from athos_identity.tenants.deps import AdminCaller, Session

router = APIRouter(prefix="/v1/connectors", tags=["connectors"])

PROBLEMS = {
    401: {"description": "Missing, unknown or revoked API key"},
    403: {"description": "The key lacks the admin scope"},
    422: {"description": "Invalid input"},
}
NOT_FOUND = {404: {"description": "No such connector (another tenant's id is 404 too)"}}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={**PROBLEMS, 409: {"description": "A connector for this store exists"}},
)
async def create_connector(
    body: ConnectorCreate, session: Session, caller: AdminCaller
) -> ConnectorOut:
    """Create a Shopify or BigCommerce connector (one per store), not yet granted access."""
    return await service.create_connector(session, caller.tenant_id, body)


@router.get("", responses=PROBLEMS)
async def list_connectors(session: Session, caller: AdminCaller) -> list[ConnectorOut]:
    """The tenant's connectors with their state; never their credentials."""
    return await service.list_connectors(session, caller.tenant_id)


@router.get("/{connector_id}", responses={**PROBLEMS, **NOT_FOUND})
async def read_connector(
    connector_id: uuid.UUID, session: Session, caller: AdminCaller
) -> ConnectorOut:
    return await service.read_connector(session, caller.tenant_id, connector_id)


@router.patch(
    "/{connector_id}",
    responses={**PROBLEMS, **NOT_FOUND, 409: {"description": "Store taken or already granted"}},
)
async def update_connector(
    connector_id: uuid.UUID, body: ConnectorUpdate, session: Session, caller: AdminCaller
) -> ConnectorOut:
    """Rename, set the store country, or set the store while no access was granted."""
    return await service.update_connector(session, caller.tenant_id, connector_id, body)


@router.delete(
    "/{connector_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**PROBLEMS, **NOT_FOUND},
)
async def delete_connector(
    connector_id: uuid.UUID, session: Session, caller: AdminCaller
) -> Response:
    """Delete the connector and everything pulled through it (identity links, sales data)."""
    await service.delete_connector(session, caller.tenant_id, connector_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
