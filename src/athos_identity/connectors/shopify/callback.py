"""The OAuth callback: Shopify redirects the merchant's browser here after the approval.

No API key comes with it: the tenant is read from the state token, and this module opens
its own tenant-scoped transactions (like a job wrapper). Checks, in order, each failing with
its own reason and changing nothing:

    missing_parameter  invalid_hmac  invalid_shop  stale_timestamp        (no database)
    invalid_state  state_unknown  state_expired  state_used                (state consumed
                                                                           atomically, once)
    shop_mismatch  connector_gone                                         (the connector's)
    code_rejected  shopify_unavailable  token_exchange_failed  scopes_missing  (Shopify)

then both tokens are stored encrypted and the connector becomes `granted`. The browser is
sent to the console with `?shopify=granted|failed&reason=…&message=…` (never a secret).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from athos_identity import db
from athos_identity.connectors import repository as connector_repository
from athos_identity.connectors.shopify import oauth, repository, service
from athos_identity.connectors.shopify.client import (
    InvalidGrant,
    ShopifyClient,
    ShopifyError,
    ShopifyUnavailable,
    app_secrets,
    exchange_code,
)
from athos_identity.settings import get_settings

log = logging.getLogger(__name__)

REQUIRED = ("code", "hmac", "shop", "state", "timestamp")
FUTURE_SKEW_SECONDS = 60


@dataclass(frozen=True)
class CallbackResult:
    ok: bool
    reason: str
    message: str
    connector_id: uuid.UUID | None = None

    def redirect_url(self) -> str:
        base = oauth.console_url()
        params = {
            "shopify": "granted" if self.ok else "failed",
            "reason": self.reason,
            "message": self.message,
        }
        if self.connector_id is not None:
            params["connector_id"] = str(self.connector_id)
        return f"{base}{'&' if '?' in base else '?'}{urlencode(params)}"


def _fail(reason: str, message: str, connector_id: uuid.UUID | None = None) -> CallbackResult:
    log.warning("Shopify OAuth callback rejected: %s", reason)
    return CallbackResult(False, reason, message, connector_id)


def now() -> float:
    return time.time()


async def handle_callback(params: Sequence[tuple[str, str]]) -> CallbackResult:
    values: dict[str, str] = {}
    for key, value in params:
        if key in values:
            return _fail("invalid_request", f"The callback repeats the parameter `{key}`.")
        values[key] = value
    for name in REQUIRED:
        if not values.get(name):
            return _fail("missing_parameter", f"The callback lacks the `{name}` parameter.")

    # 1. Signed by Shopify with our client secret (or the previous one, during a rotation).
    if not oauth.callback_signature_valid(params, app_secrets()):
        return _fail(
            "invalid_hmac", "The callback's signature does not match: it did not come from Shopify."
        )
    shop = values["shop"]
    if not oauth.is_valid_shop(shop):
        return _fail("invalid_shop", "The shop is not a {name}.myshopify.com domain.")
    try:
        timestamp = int(values["timestamp"])
    except ValueError:
        return _fail("stale_timestamp", "The callback's timestamp is not a number.")
    age = now() - timestamp
    if age > get_settings().shopify_callback_max_age_seconds or age < -FUTURE_SKEW_SECONDS:
        return _fail(
            "stale_timestamp",
            "The callback is too old (or from the future): click Grant Access again.",
        )

    # 2. The state: ours, for this tenant, unexpired, unused; consumed now, once.
    state = values["state"]
    tenant_id = oauth.tenant_of_state(state)
    if tenant_id is None:
        return _fail("invalid_state", "The callback's state was not issued by this service.")
    state_hash = oauth.hash_state(state)
    async with db.tenant_transaction(tenant_id) as session:
        consumed = await repository.consume_state(session, tenant_id, state_hash)
        if consumed is None:
            known = await repository.get_state(session, tenant_id, state_hash)
    if consumed is None:
        if known is None:
            return _fail("state_unknown", "The callback's state is unknown: click Grant Access.")
        if known.used_at is not None:
            return _fail(
                "state_used",
                "This approval was already used: click Grant Access again.",
                known.connector_id,
            )
        return _fail(
            "state_expired",
            "The approval took too long (the state expired): click Grant Access again.",
            known.connector_id,
        )
    connector_id = consumed.connector_id

    # 3. The shop is the connector's shop.
    if consumed.shop != shop:
        return _fail(
            "shop_mismatch",
            "Shopify answered for another shop than the connector's.",
            connector_id,
        )
    async with db.tenant_transaction(tenant_id) as session:
        connector = await connector_repository.get_connector(session, tenant_id, connector_id)
        store = connector.store if connector is not None else None
    if connector is None:
        return _fail("connector_gone", "The connector was deleted during the approval.")
    if store != shop:
        return _fail(
            "shop_mismatch", "Shopify answered for another shop than the connector's.", connector_id
        )

    # 4. The code, exchanged for expiring tokens; the scopes granted are those asked.
    try:
        grant = await exchange_code(shop, values["code"])
    except InvalidGrant:
        return _fail(
            "code_rejected",
            "Shopify refused the authorization code (already used or expired): "
            "click Grant Access again.",
            connector_id,
        )
    except ShopifyUnavailable:
        return _fail(
            "shopify_unavailable", "Shopify could not be reached: try again.", connector_id
        )
    except ShopifyError:
        # A fixed message: Shopify's own text would land in the redirect URL.
        return _fail(
            "token_exchange_failed",
            "Shopify refused to exchange the authorization code: click Grant Access again.",
            connector_id,
        )
    missing = oauth.missing_scopes(consumed.scopes, grant.scopes)
    if missing:
        return _fail(
            "scopes_missing",
            f"Shopify granted fewer permissions than asked; missing: {', '.join(missing)}. "
            "Grant Access again and approve every permission.",
            connector_id,
        )

    # 5. Set up at Shopify (no transaction open meanwhile), then store.
    # Done synchronously here; once the jobs exist, webhook registration can move to a task.
    async with ShopifyClient(shop, grant.access_token) as client:
        country = await service.fetch_store_country(client)
        _, warning = await service.register_webhooks(client)
    async with db.tenant_transaction(tenant_id) as session:
        connector = await connector_repository.get_connector(
            session, tenant_id, connector_id, for_update=True
        )
        if connector is not None and connector.store == shop:
            await service.complete_grant(
                session,
                connector,
                grant,
                store_country=country,
                warnings=[warning] if warning else [],
            )
    if connector is None or connector.store != shop:
        return _fail("connector_gone", "The connector was deleted during the approval.")
    return CallbackResult(True, "granted", "Access granted.", connector_id)
