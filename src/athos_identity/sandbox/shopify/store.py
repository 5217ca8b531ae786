"""A Shopify shop in the sandbox: data, the app installation and its tokens, webhooks."""

from __future__ import annotations

import secrets
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from athos_identity.sandbox.clock import Clock
from athos_identity.sandbox.config import SHOPIFY_RESTORE_RATES
from athos_identity.sandbox.data import StoreData
from athos_identity.sandbox.shopify.throttle import CostBucket

if TYPE_CHECKING:
    from athos_identity.sandbox.shopify.bulk import BulkOperation

ACCESS_TOKEN_SECONDS = 3600
REFRESH_TOKEN_SECONDS = 90 * 86_400
AUTHORIZATION_CODE_SECONDS = 600

# write_X grants read_X too; read_all_orders is its own scope that widens read_orders.
IMPLIED_SCOPES: dict[str, tuple[str, ...]] = {
    "write_customers": ("read_customers",),
    "write_orders": ("read_orders",),
    "write_products": ("read_products",),
}


def effective_scopes(granted: frozenset[str]) -> frozenset[str]:
    implied = {s for scope in granted for s in IMPLIED_SCOPES.get(scope, ())}
    return granted | implied


@dataclass
class AuthorizationCode:
    code: str
    scopes: tuple[str, ...]  # what this approval granted (the exchange reports these)
    expires_at: float
    used: bool = False


@dataclass
class AccessToken:
    token: str
    expires_at: float | None  # None: a non-expiring offline token


@dataclass
class RefreshToken:
    token: str
    expires_at: float
    used: bool = False


@dataclass
class WebhookSubscription:
    id: int
    topic: str  # GraphQL enum, e.g. CUSTOMERS_UPDATE
    uri: str
    created_at: int

    @property
    def gid(self) -> str:
        return f"gid://shopify/WebhookSubscription/{self.id}"

    @property
    def header_topic(self) -> str:
        """CUSTOMERS_UPDATE -> customers/update, APP_UNINSTALLED -> app/uninstalled."""
        resource, _, action = self.topic.lower().partition("_")
        return f"{resource}/{action}"


@dataclass
class ShopifyShop:
    domain: str  # demo-shop.myshopify.com
    data: StoreData
    plan: str
    bucket: CostBucket
    granted_scopes: frozenset[str] | None = None  # None: the app is not installed
    withheld_scopes: frozenset[str] = frozenset()  # the merchant grants fewer than asked
    optional_granted: frozenset[str] = frozenset()  # granted through optional_scopes=
    required_scopes_revocable: bool = False  # see SandboxConfig.shopify_required_scopes_revocable
    codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    access_tokens: dict[str, AccessToken] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    webhooks: dict[int, WebhookSubscription] = field(default_factory=dict)
    bulk_operations: dict[int, BulkOperation] = field(default_factory=dict)
    next_webhook_id: int = 1

    @property
    def shop_id(self) -> int:
        return 60_000_000_000 + zlib.crc32(self.domain.encode())

    @property
    def name(self) -> str:
        return self.domain.removesuffix(".myshopify.com")

    @property
    def installed(self) -> bool:
        return self.granted_scopes is not None

    def scopes(self) -> frozenset[str]:
        return effective_scopes(self.granted_scopes or frozenset())

    def set_plan(self, plan: str) -> None:
        self.plan = plan
        self.bucket.restore_rate = SHOPIFY_RESTORE_RATES[plan]

    # tokens -------------------------------------------------------------------------------
    def token_is_valid(self, token: str | None, now: float) -> bool:
        if not token or not self.installed:
            return False
        found = self.access_tokens.get(token)
        return found is not None and (found.expires_at is None or found.expires_at > now)

    def issue_code(self, scopes: tuple[str, ...], now: float) -> AuthorizationCode:
        code = AuthorizationCode(secrets.token_hex(16), scopes, now + AUTHORIZATION_CODE_SECONDS)
        self.codes[code.code] = code
        return code

    def issue_tokens(
        self, now: float, *, expiring: bool
    ) -> tuple[AccessToken, RefreshToken | None]:
        access = AccessToken(
            "shpat_" + secrets.token_hex(16), now + ACCESS_TOKEN_SECONDS if expiring else None
        )
        self.access_tokens[access.token] = access
        if not expiring:
            return access, None
        refresh = RefreshToken("shprt_" + secrets.token_hex(24), now + REFRESH_TOKEN_SECONDS)
        self.refresh_tokens[refresh.token] = refresh
        return access, refresh

    def uninstall(self) -> None:
        """Every token dies with the installation; webhooks subscriptions go too."""
        self.granted_scopes = None
        self.optional_granted = frozenset()
        self.access_tokens.clear()
        self.refresh_tokens.clear()
        self.codes.clear()
        self.webhooks.clear()


def new_shop(domain: str, data: StoreData, plan: str, clock: Clock) -> ShopifyShop:
    return ShopifyShop(domain, data, plan, CostBucket(clock, SHOPIFY_RESTORE_RATES[plan]))
