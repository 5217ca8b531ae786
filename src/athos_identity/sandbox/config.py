"""Sandbox settings: data sizes, seed, plans, time factor, the Shopify app credentials."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

DEFAULT_SHOP = "demo-shop.myshopify.com"
DEFAULT_STORE_HASH = "demo01"
DEFAULT_API_VERSION = "2026-10"
# What the sandbox app declares as `optional_scopes` in its app configuration (Shopify's
# shopify.app.toml [access_scopes]); only these can be granted as optional, and revoked.
DEFAULT_OPTIONAL_SCOPES: tuple[str, ...] = (
    "read_customers", "write_customers", "read_orders", "write_orders", "read_all_orders",
)  # fmt: skip

# Shopify restore rate (points per second) by plan; bucket size is 2000 on every plan here.
SHOPIFY_RESTORE_RATES: dict[str, float] = {
    "basic": 100, "standard": 100, "shopify": 100, "advanced": 200, "pro": 200,
    "plus": 1000, "enterprise": 2000, "unlimited": float("inf"),
}  # fmt: skip
# BigCommerce requests per 30-second window by plan (shared by every app on the store).
BIGCOMMERCE_QUOTAS: dict[str, float] = {
    "basic": 150, "standard": 150, "plus": 150, "advanced": 450, "pro": 450,
    "enterprise": 450, "unlimited": float("inf"),
}  # fmt: skip


def _derived(seed: int, purpose: str, length: int = 32) -> str:
    """Stable per-seed credentials, so a restarted sandbox keeps the same ones."""
    return hashlib.sha256(f"athos-sandbox:{seed}:{purpose}".encode()).hexdigest()[:length]


@dataclass
class SandboxConfig:
    host: str = "127.0.0.1"
    port: int = 8900
    customers: int = 1000
    orders: int = 2000
    seed: int = 42
    plan: str | None = None  # None: Shopify "basic", BigCommerce "standard"
    time_factor: float = 1.0
    shops: tuple[str, ...] = (DEFAULT_SHOP,)
    store_hashes: tuple[str, ...] = (DEFAULT_STORE_HASH,)
    country: str = "US"
    api_version: str = DEFAULT_API_VERSION
    shopify_client_id: str = ""
    shopify_client_secret: str = ""
    shopify_optional_scopes: tuple[str, ...] = DEFAULT_OPTIONAL_SCOPES
    # Not Shopify when on: let appRevokeAccessScopes give back scopes granted through
    # `scope=` (Shopify treats them as required: CANNOT_REVOKE_REQUIRED_SCOPES). Off, as
    # Shopify; per shop via PATCH, to play an app whose customer-data scopes are optional.
    shopify_required_scopes_revocable: bool = False
    # Non-loopback clients are refused unless this is set (the sandbox has no real auth).
    allow_remote: bool = False
    # Absolute URLs the sandbox hands out (bulk results); default: the request's own base.
    public_url: str | None = None
    webhook_timeout_seconds: float = 5.0
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.shopify_client_id:
            self.shopify_client_id = _derived(self.seed, "shopify-client-id")
        if not self.shopify_client_secret:
            self.shopify_client_secret = "shpss_" + _derived(self.seed, "shopify-client-secret")
        if self.plan is not None:
            plan = self.plan.lower()
            if plan not in SHOPIFY_RESTORE_RATES or plan not in BIGCOMMERCE_QUOTAS:
                raise ValueError(f"unknown plan {self.plan!r}")
            self.plan = plan
        if self.time_factor <= 0:
            raise ValueError("time factor must be positive")

    @property
    def shopify_plan(self) -> str:
        return self.plan or "basic"

    @property
    def bigcommerce_plan(self) -> str:
        return self.plan or "standard"

    def default_bigcommerce_token(self, store_hash: str) -> str:
        return _derived(self.seed, f"bigcommerce-token:{store_hash}", 31)
