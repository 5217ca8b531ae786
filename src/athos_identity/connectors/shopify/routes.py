from __future__ import annotations

import uuid

from fastapi import APIRouter, BackgroundTasks, Request, status
from fastapi.responses import RedirectResponse

from athos_identity.connectors.routes import NOT_FOUND, PROBLEMS
from athos_identity.connectors.shopify import callback, service, webhooks
from athos_identity.connectors.shopify.schemas import (
    ComplianceRequestOut,
    GrantCreate,
    GrantOut,
    RevokeCreate,
    RevokeOut,
    ShopifyStatusOut,
)
from athos_identity.connectors.shopify.tasks import queue_retry_revoke
from athos_identity.tenants.deps import AdminCaller, Session

router = APIRouter(prefix="/v1", tags=["shopify"])

NOT_SHOPIFY = {409: {"description": "Not a Shopify connector, or it has no store yet"}}


@router.post(
    "/connectors/{connector_id}/shopify/grant",
    responses={**PROBLEMS, **NOT_FOUND, **NOT_SHOPIFY, 503: {"description": "App not set up"}},
)
async def start_grant(
    connector_id: uuid.UUID, session: Session, caller: AdminCaller, body: GrantCreate | None = None
) -> GrantOut:
    """Grant Access: the Shopify approval URL to send the merchant's browser to.

    It carries a fresh single-use state (10 minutes) bound to this tenant and connector;
    Shopify sends the browser back to /v1/shopify/oauth/callback, which stores the tokens
    and redirects to the console."""
    return await service.start_grant(session, caller.tenant_id, connector_id, body or GrantCreate())


@router.get(
    "/shopify/oauth/callback",
    status_code=status.HTTP_303_SEE_OTHER,
    response_class=RedirectResponse,
    responses={303: {"description": "To the console, with shopify=granted|failed&reason=…"}},
)
async def oauth_callback(request: Request) -> RedirectResponse:
    """Where Shopify redirects the merchant's browser after the approval (no API key: the
    request is authenticated by its HMAC and the single-use state)."""
    result = await callback.handle_callback(list(request.query_params.multi_items()))
    return RedirectResponse(result.redirect_url(), status_code=status.HTTP_303_SEE_OTHER)


@router.get(
    "/connectors/{connector_id}/shopify", responses={**PROBLEMS, **NOT_FOUND, **NOT_SHOPIFY}
)
async def read_status(
    connector_id: uuid.UUID, session: Session, caller: AdminCaller
) -> ShopifyStatusOut:
    """The connector with its token expiries, API version and webhook address."""
    return await service.status(session, caller.tenant_id, connector_id)


@router.post(
    "/connectors/{connector_id}/shopify/revoke",
    responses={**PROBLEMS, **NOT_FOUND, **NOT_SHOPIFY},
)
async def revoke(
    connector_id: uuid.UUID,
    session: Session,
    caller: AdminCaller,
    background: BackgroundTasks,
    body: RevokeCreate | None = None,
) -> RevokeOut:
    """Revoke Authorization: give the customer-data scopes back at Shopify (or uninstall,
    when asked), delete the tokens, purge the connector's identity and sales data.

    Our copy goes even when Shopify is unreachable; `retry_remote` then says a job keeps
    trying to finish at Shopify (revoking again does the same at once)."""
    uninstall = (body or RevokeCreate()).uninstall
    result = await service.revoke(session, caller.tenant_id, connector_id, uninstall)
    if result.retry_remote:
        # After the response, so after the purge is committed.
        background.add_task(queue_retry_revoke, caller.tenant_id, connector_id, uninstall)
    return result


@router.get(
    "/connectors/{connector_id}/shopify/compliance-requests",
    responses={**PROBLEMS, **NOT_FOUND, **NOT_SHOPIFY},
)
async def list_compliance_requests(
    connector_id: uuid.UUID, session: Session, caller: AdminCaller
) -> list[ComplianceRequestOut]:
    """Privacy requests Shopify sent for this store (data requests with what we hold,
    redactions with what was erased): ids and counts only."""
    return await service.list_compliance_requests(session, caller.tenant_id, connector_id)


@router.get("/shopify/compliance-requests/{request_id}", responses={**PROBLEMS, **NOT_FOUND})
async def read_compliance_request(
    request_id: uuid.UUID, session: Session, caller: AdminCaller
) -> ComplianceRequestOut:
    return await service.read_compliance_request(session, caller.tenant_id, request_id)


@router.post(
    "/webhooks/shopify",
    responses={
        401: {"description": "Missing or wrong X-Shopify-Hmac-Sha256"},
        400: {"description": "Signed, but headers or body malformed"},
    },
)
async def receive_webhook(request: Request) -> dict[str, str]:
    """Shopify webhooks and the mandatory compliance topics, verified on the raw body."""
    body = await request.body()
    received = await webhooks.receive(dict(request.headers), body, str(request.url))
    return {"status": received.status, "topic": received.topic or ""}
