"""A BigCommerce store in the sandbox: data, API accounts, hooks, quota."""

from __future__ import annotations

import secrets
import zlib
from dataclasses import dataclass, field

from athos_identity.sandbox.bigcommerce.quota import RequestQuota
from athos_identity.sandbox.clock import Clock
from athos_identity.sandbox.config import BIGCOMMERCE_QUOTAS
from athos_identity.sandbox.data import StoreData

# OAuth scopes of store-level API accounts; a "modify" scope includes its read-only twin.
READ_SCOPES: dict[str, frozenset[str]] = {
    "customers": frozenset({"store_v2_customers_read_only", "store_v2_customers"}),
    "orders": frozenset({"store_v2_orders_read_only", "store_v2_orders"}),
    "products": frozenset({"store_v2_products_read_only", "store_v2_products"}),
    "content": frozenset({"store_v2_content_read_only", "store_v2_content"}),
    "themes": frozenset({"store_themes_read_only", "store_themes_manage"}),
    "information": frozenset({"store_v2_information_read_only", "store_v2_information"}),
}
FULL_SCOPES: tuple[str, ...] = (
    "store_v2_customers", "store_v2_orders", "store_v2_products", "store_v2_content",
    "store_themes_manage", "store_v2_information",
)  # fmt: skip
KNOWN_SCOPES = frozenset().union(*READ_SCOPES.values())


@dataclass
class Account:
    """A store-level API account: one token, fixed scopes (they can't be edited)."""

    store_hash: str
    access_token: str
    client_id: str
    scopes: tuple[str, ...]
    name: str = "sandbox account"

    def can_read(self, resource: str) -> bool:
        return bool(READ_SCOPES[resource].intersection(self.scopes))

    def as_json(self) -> dict[str, object]:
        return {
            "store_hash": self.store_hash,
            "access_token": self.access_token,
            "client_id": self.client_id,
            "scopes": list(self.scopes),
            "name": self.name,
        }


@dataclass
class Hook:
    id: int
    scope: str
    destination: str
    headers: dict[str, str]
    is_active: bool
    client_id: str
    store_hash: str
    created_at: int
    updated_at: int
    events_history_enabled: bool = False

    def matches(self, event_scope: str) -> bool:
        if self.scope.endswith("/*"):
            return event_scope.startswith(self.scope[:-1])
        return self.scope == event_scope

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "client_id": self.client_id,
            "store_hash": self.store_hash,
            "scope": self.scope,
            "destination": self.destination,
            "headers": self.headers,
            "is_active": self.is_active,
            "events_history_enabled": self.events_history_enabled,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass
class BigCommerceStore:
    store_hash: str
    data: StoreData
    plan: str
    quota: RequestQuota
    hooks: dict[int, Hook] = field(default_factory=dict)
    next_hook_id: int = 1

    @property
    def store_id(self) -> str:
        """BigCommerce's numeric store id (payloads carry it as a string)."""
        return str(1_000_000 + zlib.crc32(self.store_hash.encode()) % 9_000_000)

    def set_plan(self, plan: str) -> None:
        self.plan = plan
        self.quota.per_window = BIGCOMMERCE_QUOTAS[plan]


def new_store(store_hash: str, data: StoreData, plan: str, clock: Clock) -> BigCommerceStore:
    return BigCommerceStore(store_hash, data, plan, RequestQuota(clock, BIGCOMMERCE_QUOTAS[plan]))


def new_token() -> str:
    """BigCommerce tokens are 31 lowercase alphanumerics."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(31))
