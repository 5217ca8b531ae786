"""Shopify connector rules: start a grant, status, revoke, webhook subscriptions. Never commits.

The OAuth callback and the webhooks arrive without an API key: `callback.py` and
`webhooks.py` open their own (tenant-scoped) transactions and call into this module.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from athos_identity.audit import service as audit
from athos_identity.connectors import repository as connector_repository
from athos_identity.connectors import service as connectors
from athos_identity.connectors.models import Connector, ConnectorState, Platform
from athos_identity.connectors.shopify import oauth, repository, tokens
from athos_identity.connectors.shopify.client import (
    CredentialRejected,
    ShopifyClient,
    ShopifyError,
    TokenGrant,
)
from athos_identity.connectors.shopify.models import ShopifyOAuthState
from athos_identity.connectors.shopify.schemas import (
    ComplianceRequestOut,
    GrantCreate,
    GrantOut,
    RevokeOut,
    ShopifyStatusOut,
)
from athos_identity.kit.errors import Conflict, NotFound
from athos_identity.settings import get_settings

log = logging.getLogger(__name__)

# Topics subscribed after a grant (the compliance topics are set in the app's configuration,
# not through the API: they always go to the same URL, /v1/webhooks/shopify).
WEBHOOK_TOPICS = (
    "APP_UNINSTALLED",
    "CUSTOMERS_CREATE",
    "CUSTOMERS_UPDATE",
    "CUSTOMERS_DELETE",
    "ORDERS_CREATE",
    "ORDERS_UPDATED",
    "ORDERS_DELETE",
)
ALREADY_TAKEN = "already been taken"

SUBSCRIBE = """
mutation subscribe($topic: WebhookSubscriptionTopic!, $sub: WebhookSubscriptionInput!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $sub) {
    webhookSubscription { id topic }
    userErrors { field message }
  }
}"""
SHOP_COUNTRY = "query shopCountry { shop { billingAddress { countryCodeV2 } } }"
REVOKE_SCOPES = """
mutation revoke($scopes: [String!]!) {
  appRevokeAccessScopes(scopes: $scopes) {
    revoked { handle }
    userErrors { field message code }
  }
}"""
UNINSTALL = "mutation uninstall { appUninstall { app { id } userErrors { field message } } }"
REQUIRED_SCOPES_REFUSED = "CANNOT_REVOKE_REQUIRED_SCOPES"


async def _shopify_connector(
    session: AsyncSession, tenant_id: uuid.UUID, connector_id: uuid.UUID, *, lock: bool = False
) -> Connector:
    return await connectors.get_connector(
        session, tenant_id, connector_id, platform=Platform.shopify, for_update=lock
    )


# --- grant ----------------------------------------------------------------------------------


async def start_grant(
    session: AsyncSession, tenant_id: uuid.UUID, connector_id: uuid.UUID, body: GrantCreate
) -> GrantOut:
    """A fresh single-use state bound to the tenant, the connector and its shop."""
    connector = await _shopify_connector(session, tenant_id, connector_id)
    if connector.store is None:
        raise Conflict(
            "Set the connector's store (its myshopify.com domain) before granting access."
        )
    scopes = oauth.requested_scopes(body.history_days)
    state = oauth.new_state(tenant_id)
    expires_at = datetime.now(UTC) + timedelta(seconds=get_settings().shopify_state_ttl_seconds)
    url = oauth.authorize_url(connector.store, scopes, state)  # fails first if not configured
    await repository.delete_expired_states(session, tenant_id)
    await repository.add_state(
        session,
        ShopifyOAuthState(
            tenant_id=tenant_id,
            state_hash=oauth.hash_state(state),
            connector_id=connector.id,
            shop=connector.store,
            scopes=scopes,
            expires_at=expires_at,
        ),
    )
    log.info("connector %s: Shopify grant started", connector.id)
    return GrantOut(authorize_url=url, scopes=scopes, expires_at=expires_at)


async def fetch_store_country(client: ShopifyClient) -> str | None:
    """The shop's billing country (phones without a country code); None if unknown."""
    try:
        data = await client.query(SHOP_COUNTRY)
    except ShopifyError as error:
        log.info("shop country of %s not read: %s", client.shop, error.title)
        return None
    country = ((data.get("shop") or {}).get("billingAddress") or {}).get("countryCodeV2")
    return country if isinstance(country, str) and len(country) == 2 else None


async def register_webhooks(client: ShopifyClient) -> tuple[list[str], str | None]:
    """Subscribe our receiver to every topic; returns (topics subscribed, warning)."""
    uri = oauth.public_url(oauth.WEBHOOK_PATH)
    done: list[str] = []
    try:
        for topic in WEBHOOK_TOPICS:
            data = await client.query(
                SUBSCRIBE, {"topic": topic, "sub": {"uri": uri, "format": "JSON"}}
            )
            payload = data.get("webhookSubscriptionCreate") or {}
            errors = payload.get("userErrors") or []
            if errors and not all(ALREADY_TAKEN in str(e.get("message")) for e in errors):
                messages = "; ".join(str(e.get("message")) for e in errors)
                raise ShopifyError(f"webhookSubscriptionCreate {topic}: {messages}")
            done.append(topic)
    except ShopifyError as error:
        log.warning("webhooks of %s not all registered: %s", client.shop, error.detail)
        return done, (
            f"Shopify webhooks could not all be registered ({error.title}); changes arrive "
            "with the periodic syncs only. Grant Access again to retry."
        )
    return done, None


async def complete_grant(
    session: AsyncSession,
    connector: Connector,
    grant: TokenGrant,
    *,
    store_country: str | None,
    warnings: list[str],
) -> None:
    """Store both tokens encrypted and move the connector to `granted` (caller commits)."""
    await tokens.store_grant(session, connector, grant)
    if connector.store_country is None and store_country is not None:
        connector.store_country = store_country
    await connectors.mark_granted(session, connector, list(grant.scopes), warnings)
    await audit.record(
        session, connector.tenant_id, "shopify.grant", connector.id, scopes=len(grant.scopes)
    )
    log.info("connector %s: Shopify access granted", connector.id)


# --- status ---------------------------------------------------------------------------------


async def status(
    session: AsyncSession, tenant_id: uuid.UUID, connector_id: uuid.UUID
) -> ShopifyStatusOut:
    connector = await _shopify_connector(session, tenant_id, connector_id)
    access = await connector_repository.get_credential(
        session, tenant_id, connector_id, tokens.ACCESS.value
    )
    refresh = await connector_repository.get_credential(
        session, tenant_id, connector_id, tokens.REFRESH.value
    )
    return ShopifyStatusOut(
        connector=await connectors.to_out(session, connector),
        api_version=get_settings().shopify_api_version,
        access_token_expires_at=access.expires_at if access else None,
        refresh_token_expires_at=refresh.expires_at if refresh else None,
        webhook_url=oauth.public_url(oauth.WEBHOOK_PATH),
    )


# --- revoke ---------------------------------------------------------------------------------


async def _remote_revoke(
    connector: Connector, token: str, uninstall: bool
) -> tuple[str, str | None, list[str]]:
    """(outcome, error, revoked scopes) of telling Shopify; never raises.

    Scopes asked for in the authorization-code grant are the app's *required* scopes, which
    `appRevokeAccessScopes` refuses (CANNOT_REVOKE_REQUIRED_SCOPES: only optional scopes,
    granted after installation, can be given back). This app asks for the customer-data
    scopes and nothing else, so uninstalling it is then the revocation the merchant asked
    for; optional ones (an app configured that way) are revoked alone."""
    assert connector.store is not None
    scopes = [s for s in connector.scopes if s in oauth.CUSTOMER_DATA_SCOPES]
    try:
        async with ShopifyClient(connector.store, token) as client:
            if not uninstall:
                if not scopes:
                    return "nothing_to_revoke", None, []
                data = await client.query(REVOKE_SCOPES, {"scopes": scopes})
                payload = data.get("appRevokeAccessScopes") or {}
                errors = payload.get("userErrors") or []
                if not errors:
                    revoked = [r.get("handle") for r in payload.get("revoked") or []]
                    return "scopes_revoked", None, [h for h in revoked if h]
                if not all(e.get("code") == REQUIRED_SCOPES_REFUSED for e in errors):
                    return "refused", f"Shopify refused: {_messages(errors)}", []
                log.info("connector %s: scopes are required at Shopify: uninstalling", connector.id)
            data = await client.query(UNINSTALL)
            payload = data.get("appUninstall") or {}
    except CredentialRejected:
        return "already_invalid", None, []
    except ShopifyError as error:
        return "failed", error.detail, []
    errors = payload.get("userErrors") or []
    if errors:
        return "refused", f"Shopify refused: {_messages(errors)}", []
    return "uninstalled", None, scopes


def _messages(errors: list[dict[str, Any]]) -> str:
    return "; ".join(f"{e.get('code') or ''} {e.get('message') or ''}".strip() for e in errors)


async def _token_for_remote(session: AsyncSession, connector: Connector) -> str | None:
    """The stored access token, refreshed if it expired; None when there is none that works."""
    row = await connector_repository.get_credential(
        session, connector.tenant_id, connector.id, tokens.ACCESS.value
    )
    if row is None or connector.store is None:
        return None
    try:
        if not tokens.needs_refresh(row.expires_at):
            return await connectors.read_credential(session, connector, tokens.ACCESS)
        return await tokens.refresh_now(connector.tenant_id, connector.id, require_granted=False)
    except CredentialRejected:
        return None
    except ShopifyError as error:  # unreachable: the stored token may still work
        log.info("connector %s: token not refreshed before revoke: %s", connector.id, error.title)
        return await connectors.read_credential_quietly(session, connector, tokens.ACCESS)


async def revoke(
    session: AsyncSession, tenant_id: uuid.UUID, connector_id: uuid.UUID, uninstall: bool
) -> RevokeOut:
    """Give the customer-data scopes back at Shopify, then delete the tokens and purge the
    connector's identity links, sales data and webhook records; state `revoked`.

    Shopify unreachable: our copy of the data is deleted all the same; the encrypted
    tokens alone are kept (useless to the pulls: the connector is revoked) so that a second
    revoke can finish the job at Shopify, and the answer says `retry_remote`."""
    connector = await _shopify_connector(session, tenant_id, connector_id)
    had_token = (
        await connector_repository.get_credential(
            session, tenant_id, connector_id, tokens.ACCESS.value
        )
        is not None
    )
    token = await _token_for_remote(session, connector)
    if token is None:
        remote, remote_error, revoked = (
            ("already_invalid" if had_token else "nothing_to_revoke"),
            None,
            [],
        )
    else:
        remote, remote_error, revoked = await _remote_revoke(connector, token, uninstall)

    # The remote call is done: now lock the row (a refresh above committed on its own).
    connector = await _shopify_connector(session, tenant_id, connector_id, lock=True)
    await session.refresh(connector)
    kept: list[tuple[Any, str, datetime | None]] = []
    if remote == "failed":
        for kind in (tokens.ACCESS, tokens.REFRESH):
            row = await connector_repository.get_credential(
                session, tenant_id, connector_id, kind.value
            )
            secret = await connectors.read_credential_quietly(session, connector, kind)
            if row is not None and secret is not None:
                kept.append((kind, secret, row.expires_at))
    # Pulls stop by themselves: the purge below removes their runs (a queued job then ends
    # at once) and a running one finds its run gone at its next page.
    reason = (
        "Access revoked from the console."
        if not uninstall
        else "The app was uninstalled from the console."
    )
    granted_scopes = list(connector.scopes)
    purged = await connectors.revoke(session, connector, reason)
    for kind, secret, expires_at in kept:
        await connectors.store_credential(session, connector, kind, secret, expires_at=expires_at)
    if remote == "failed":
        connector.scopes = granted_scopes  # still granted at Shopify: what a retry revokes
        connector.warnings = [
            "Shopify could not be told to revoke access: our copy of the data is deleted; "
            "revoke again (or remove the app in the Shopify admin) to finish at Shopify."
        ]
        await connector_repository.touch(session, connector)
    elif remote == "refused":  # not worth retrying: only the merchant can remove the app
        connector.warnings = [
            "Shopify refused to give the permissions back: our copy of the data is deleted; "
            "remove the app in the Shopify admin (Settings > Apps) to finish at Shopify."
        ]
        await connector_repository.touch(session, connector)
    await audit.record(
        session,
        tenant_id,
        "shopify.revoke",
        connector_id,
        rows_purged=sum(purged.values()),
        retry_remote=remote == "failed",
    )
    log.info("connector %s revoked (remote: %s)", connector.id, remote)
    return RevokeOut(
        connector=await connectors.to_out(session, connector),
        remote=remote,
        remote_error=remote_error,
        retry_remote=remote == "failed",
        revoked_scopes=revoked,
        purged=purged,
    )


async def finish_remote_revoke(
    session: AsyncSession, tenant_id: uuid.UUID, connector_id: uuid.UUID, uninstall: bool
) -> RevokeOut | None:
    """The background retry of a revoke that could not reach Shopify; None when there is
    nothing left to finish: the connector was granted again since (its new tokens and data
    are the merchant's fresh choice, not ours to revoke) or its kept tokens are gone."""
    connector = await _shopify_connector(session, tenant_id, connector_id)
    kept = await connector_repository.get_credential(
        session, tenant_id, connector_id, tokens.ACCESS.value
    )
    if connector.state != ConnectorState.revoked or kept is None:
        return None
    return await revoke(session, tenant_id, connector_id, uninstall)


async def revoke_after_uninstall(session: AsyncSession, connector: Connector) -> dict[str, int]:
    """app/uninstalled: as revoke, without calling Shopify (the token is already dead)."""
    if connector.state == ConnectorState.revoked:
        purged = await connector_repository.purge_connector_data(
            session, connector.tenant_id, connector.id
        )
        connector.warnings = []
        await connector_repository.touch(session, connector)
        return purged
    return await connectors.revoke(
        session, connector, "The app was uninstalled from the Shopify store."
    )


# --- compliance -----------------------------------------------------------------------------


async def list_compliance_requests(
    session: AsyncSession, tenant_id: uuid.UUID, connector_id: uuid.UUID
) -> list[ComplianceRequestOut]:
    await _shopify_connector(session, tenant_id, connector_id)
    rows = await repository.list_compliance_requests(session, tenant_id, connector_id)
    return [ComplianceRequestOut.model_validate(r) for r in rows]


async def read_compliance_request(
    session: AsyncSession, tenant_id: uuid.UUID, request_id: uuid.UUID
) -> ComplianceRequestOut:
    row = await repository.get_compliance_request(session, tenant_id, request_id)
    if row is None:
        raise NotFound("No compliance request with this id.")
    return ComplianceRequestOut.model_validate(row)
