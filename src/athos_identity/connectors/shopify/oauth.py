"""Pure helpers of Shopify's authorization-code grant: scopes, state tokens, signatures.

Callback `?code&hmac&host&shop&state&timestamp`: `hmac` is the lowercase hex
HMAC-SHA256(client secret, the other parameters sorted, `k=v` joined by `&`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Iterable, Sequence
from urllib.parse import urlencode

from athos_identity.settings import get_settings

SHOP_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com\Z")
STATE_PREFIX = "shst_"
CALLBACK_PATH = "/v1/shopify/oauth/callback"
WEBHOOK_PATH = "/v1/webhooks/shopify"
ORDER_HISTORY_DAYS_WITHOUT_ALL_ORDERS = 60
READ_ALL_ORDERS = "read_all_orders"
# Scopes whose write_ variant implies the read_ one.
_IMPLIED = {"write_customers": "read_customers", "write_orders": "read_orders"}
# The customer-data scopes a revocation gives back.
CUSTOMER_DATA_SCOPES = ("read_customers", "write_customers", "read_orders", "write_orders",
                        READ_ALL_ORDERS)  # fmt: skip


def is_valid_shop(shop: str | None) -> bool:
    return bool(shop) and len(shop or "") <= 255 and SHOP_PATTERN.match(shop or "") is not None


def requested_scopes(history_days: int | None = None) -> list[str]:
    scopes = [s.strip() for s in get_settings().shopify_scopes.split(",") if s.strip()]
    if (
        history_days is not None
        and history_days > ORDER_HISTORY_DAYS_WITHOUT_ALL_ORDERS
        and READ_ALL_ORDERS not in scopes
    ):
        scopes.append(READ_ALL_ORDERS)
    return list(dict.fromkeys(scopes))


def missing_scopes(requested: Iterable[str], granted: Iterable[str]) -> list[str]:
    """Requested scopes the grant does not cover (write_x covers read_x)."""
    have = set(granted)
    have |= {_IMPLIED[s] for s in have if s in _IMPLIED}
    return [s for s in requested if s not in have]


# --- state ----------------------------------------------------------------------------------


def new_state(tenant_id: uuid.UUID) -> str:
    """A single-use state token; the tenant travels in it (as in API keys)."""
    return f"{STATE_PREFIX}{tenant_id.hex}_{secrets.token_urlsafe(32)}"


def hash_state(state: str) -> bytes:
    return hashlib.sha256(state.encode()).digest()


def tenant_of_state(state: str) -> uuid.UUID | None:
    if not state.startswith(STATE_PREFIX) or len(state) > 200:
        return None
    tenant_hex, _, rest = state[len(STATE_PREFIX) :].partition("_")
    if len(rest) < 32:
        return None
    try:
        return uuid.UUID(hex=tenant_hex)
    except ValueError:
        return None


# --- URLs -----------------------------------------------------------------------------------


def public_url(path: str) -> str:
    return get_settings().public_url.rstrip("/") + path


def redirect_uri() -> str:
    return public_url(CALLBACK_PATH)


def console_url() -> str:
    return get_settings().shopify_console_url or public_url("/console")


def authorize_url(shop: str, scopes: Sequence[str], state: str) -> str:
    from athos_identity.connectors.shopify.client import app_credentials, shop_url

    client_id, _ = app_credentials()
    query = urlencode(
        {
            "client_id": client_id,
            "scope": ",".join(scopes),
            "redirect_uri": redirect_uri(),
            "state": state,
        }
    )
    return f"{shop_url(shop)}/admin/oauth/authorize?{query}"


# --- callback signature ---------------------------------------------------------------------


def callback_message(params: Sequence[tuple[str, str]]) -> str:
    """The signed message: every parameter but `hmac` (and legacy `signature`), sorted."""
    pairs = sorted((k, v) for k, v in params if k not in ("hmac", "signature"))
    return "&".join(f"{k}={v}" for k, v in pairs)


def sign_callback(params: Sequence[tuple[str, str]], secret: str) -> str:
    message = callback_message(params)
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def callback_signature_valid(params: Sequence[tuple[str, str]], app_secrets: list[str]) -> bool:
    """Constant-time check of `hmac` against the current and the previous client secret."""
    given = [v for k, v in params if k == "hmac"]
    if len(given) != 1 or not app_secrets:
        return False
    presented = given[0].strip().lower().encode()
    valid = False
    for secret in app_secrets:  # every secret is tried: the time does not tell which matched
        expected = sign_callback(params, secret).encode()
        valid |= hmac.compare_digest(presented, expected)
    return valid
