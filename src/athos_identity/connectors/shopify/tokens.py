"""Expiring offline tokens: store, read, refresh (rotating the refresh token), reject.

    token = await shopify_access_token(session, connector)        # fresh, refreshed if needed
    async with ShopifyClient(connector.store, token) as shopify:
        data = await shopify.query(CUSTOMERS, {"after": cursor})

or, for a job that holds no transaction while it calls Shopify:

    async with connector_client(tenant_id, connector_id) as shopify:
        data = await shopify.query(...)

A refresh runs in a transaction of its own that commits at once, whatever the caller's
transaction does later: Shopify's refresh token works exactly once, so the rotated one must
never be lost with a rolled-back caller. Concurrent refreshes of one connector serialize on
the connector's row lock (SELECT … FOR UPDATE); the second one finds the token fresh and
uses it. Do not call these while your own transaction holds that row lock.

`invalid_grant` (or no refresh token left) moves the connector to `needs_reauthorization`
with the reason in `last_error`, committed, then `CredentialRejected` is raised: stop, do
not retry. Like a job wrapper, this module commits its own transactions.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from athos_identity import db
from athos_identity.connectors import repository as connector_repository
from athos_identity.connectors import service as connectors
from athos_identity.connectors.models import (
    Connector,
    ConnectorCredential,
    CredentialKind,
    Platform,
)
from athos_identity.connectors.shopify import client as shopify
from athos_identity.connectors.shopify.client import (
    CredentialRejected,
    ShopifyClient,
    TokenGrant,
)
from athos_identity.kit import crypto
from athos_identity.settings import get_settings

log = logging.getLogger(__name__)

ACCESS = CredentialKind.shopify_access
REFRESH = CredentialKind.shopify_refresh
LOCK_TIMEOUT = "15s"


def needs_refresh(expires_at: datetime | None) -> bool:
    if expires_at is None:  # a non-expiring offline token
        return False
    margin = timedelta(seconds=get_settings().shopify_token_refresh_margin_seconds)
    return expires_at - margin <= shopify.utcnow()


def _decrypt(row: ConnectorCredential) -> str:
    return crypto.decrypt_credential(
        row.ciphertext, tenant_id=row.tenant_id, connector_id=row.connector_id, purpose=row.kind
    )


async def store_grant(session: AsyncSession, connector: Connector, grant: TokenGrant) -> str:
    """Encrypt and save both tokens in the caller's transaction; returns the access hint."""
    hint = await connectors.store_credential(
        session, connector, ACCESS, grant.access_token, expires_at=grant.expires_at
    )
    if grant.refresh_token is not None:
        await connectors.store_credential(
            session, connector, REFRESH, grant.refresh_token, expires_at=grant.refresh_expires_at
        )
    return hint


async def shopify_access_token(session: AsyncSession, connector: Connector) -> str:
    """A usable access token of a granted Shopify connector, refreshed when it expires
    within the margin (ATHOS_SHOPIFY_TOKEN_REFRESH_MARGIN_SECONDS).

    Raises `ConnectorNotUsable` (409) unless the connector is granted, `CredentialRejected`
    when Shopify refused the refresh (the connector is then `needs_reauthorization`,
    committed), `ShopifyUnavailable` when Shopify could not be reached (transient)."""
    if connector.platform != Platform.shopify:
        raise connectors.ConnectorNotUsable("This is not a Shopify connector.")
    connectors.require_usable(connector)
    row = await connector_repository.get_credential(
        session, connector.tenant_id, connector.id, ACCESS.value
    )
    if row is None:
        raise connectors.ConnectorNotUsable("The connector has no stored Shopify token.")
    if not needs_refresh(row.expires_at):
        return _decrypt(row)
    return await refresh_now(connector.tenant_id, connector.id)


async def refresh_now(
    tenant_id: uuid.UUID, connector_id: uuid.UUID, *, require_granted: bool = True
) -> str:
    """Refresh under the connector's row lock, in a transaction that commits at once."""
    rejected: CredentialRejected | None = None
    async with db.tenant_transaction(tenant_id) as session:
        await session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        connector = await connectors.get_connector(
            session, tenant_id, connector_id, platform=Platform.shopify, for_update=True
        )
        if require_granted:
            connectors.require_usable(connector)
        row = await connector_repository.get_credential(
            session, tenant_id, connector_id, ACCESS.value
        )
        if row is not None and not needs_refresh(row.expires_at):
            return _decrypt(row)  # refreshed by someone else while we waited for the lock
        refresh_token = await connectors.read_credential(session, connector, REFRESH)
        if refresh_token is None or connector.store is None:
            rejected = CredentialRejected(
                "The Shopify access token expired and no refresh token is stored: "
                "Grant Access again."
            )
        else:
            try:
                grant = await shopify.refresh_access_token(connector.store, refresh_token)
            except CredentialRejected as error:
                rejected = error
            else:
                await store_grant(session, connector, grant)
                log.info("connector %s: Shopify access token refreshed", connector_id)
                return grant.access_token
        if require_granted:
            await connectors.mark_needs_reauthorization(
                session, tenant_id, connector_id, rejected.detail
            )
    raise rejected


async def record_rejection(tenant_id: uuid.UUID, connector_id: uuid.UUID, reason: str) -> None:
    """Commit `needs_reauthorization` for a connector whose token Shopify refused (401)."""
    async with db.tenant_transaction(tenant_id) as session:
        await connectors.mark_needs_reauthorization(session, tenant_id, connector_id, reason)


@asynccontextmanager
async def connector_client(
    tenant_id: uuid.UUID, connector_id: uuid.UUID
) -> AsyncIterator[ShopifyClient]:
    """A client with a fresh token, no transaction held while Shopify is called; a 401
    inside the block commits `needs_reauthorization` and re-raises `CredentialRejected`."""
    async with db.tenant_transaction(tenant_id) as session:
        connector = await connectors.get_connector(
            session, tenant_id, connector_id, platform=Platform.shopify
        )
        token = await shopify_access_token(session, connector)
        shop = connector.store
    assert shop is not None
    try:
        async with ShopifyClient(shop, token) as client:
            yield client
    except CredentialRejected as rejected:
        await record_rejection(tenant_id, connector_id, rejected.detail)
        raise
