"""Everything the running sandbox knows: shops, stores, accounts, faults, the clock."""

from __future__ import annotations

import re
from typing import Any

from athos_identity.sandbox.bigcommerce.quota import quota_headers
from athos_identity.sandbox.bigcommerce.store import (
    FULL_SCOPES,
    Account,
    BigCommerceStore,
    new_store,
    new_token,
)
from athos_identity.sandbox.clock import Clock
from athos_identity.sandbox.config import BIGCOMMERCE_QUOTAS, SandboxConfig
from athos_identity.sandbox.data import GeneratorSpec, StoreData
from athos_identity.sandbox.delivery import Dispatcher
from athos_identity.sandbox.faults import FaultRegistry
from athos_identity.sandbox.shopify.store import ShopifyShop, new_shop

SHOP_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")
STORE_HASH = re.compile(r"^[a-z0-9]{1,32}$")

BIGCOMMERCE_ORDER_ID_OFFSET = 99  # BigCommerce order numbers start at 100
SHOPIFY_CUSTOMER_ID_OFFSET = 7_000_000_000_000  # Shopify ids are large; catches int32 bugs
SHOPIFY_ORDER_ID_OFFSET = 5_000_000_000_000


class SandboxError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class SandboxState:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.clock = Clock(config.time_factor)
        self.dispatcher = Dispatcher(config.webhook_timeout_seconds)
        self.faults = FaultRegistry(config.seed)
        self.shops: dict[str, ShopifyShop] = {}
        self.stores: dict[str, BigCommerceStore] = {}
        self.bigcommerce_accounts: dict[str, Account] = {}
        for domain in config.shops:
            self.add_shop(domain)
        for store_hash in config.store_hashes:
            self.add_store(store_hash)
            self.add_account(
                store_hash,
                FULL_SCOPES,
                token=config.default_bigcommerce_token(store_hash),
                name="default full-scope account",
            )

    # creation -----------------------------------------------------------------------------
    def _store_data(
        self,
        name: str,
        customers: int | None,
        orders: int | None,
        seed: int | None,
        country: str | None,
        *,
        platform: str,
    ) -> StoreData:
        shopify = platform == "shopify"
        return StoreData(
            GeneratorSpec(
                seed=self.config.seed if seed is None else seed,
                name=name,
                country=(country or self.config.country).upper(),
                customers=self.config.customers if customers is None else customers,
                orders=self.config.orders if orders is None else orders,
                anchor=int(self.clock.now()),
                customer_id_offset=SHOPIFY_CUSTOMER_ID_OFFSET if shopify else 0,
                order_id_offset=SHOPIFY_ORDER_ID_OFFSET if shopify else BIGCOMMERCE_ORDER_ID_OFFSET,
            )
        )

    def add_shop(
        self,
        domain: str,
        *,
        customers: int | None = None,
        orders: int | None = None,
        seed: int | None = None,
        country: str | None = None,
        plan: str | None = None,
    ) -> ShopifyShop:
        if not SHOP_DOMAIN.match(domain):
            raise SandboxError(422, "shop must look like name.myshopify.com")
        if domain in self.shops:
            raise SandboxError(409, f"shop {domain} exists")
        data = self._store_data(domain, customers, orders, seed, country, platform="shopify")
        shop = new_shop(domain, data, plan or self.config.shopify_plan, self.clock)
        shop.required_scopes_revocable = self.config.shopify_required_scopes_revocable
        self.shops[domain] = shop
        return shop

    def add_store(
        self,
        store_hash: str,
        *,
        customers: int | None = None,
        orders: int | None = None,
        seed: int | None = None,
        country: str | None = None,
        plan: str | None = None,
    ) -> BigCommerceStore:
        if not STORE_HASH.match(store_hash):
            raise SandboxError(422, "store_hash must be lowercase letters and digits")
        if store_hash in self.stores:
            raise SandboxError(409, f"store {store_hash} exists")
        data = self._store_data(
            store_hash, customers, orders, seed, country, platform="bigcommerce"
        )
        store = new_store(store_hash, data, plan or self.config.bigcommerce_plan, self.clock)
        self.stores[store_hash] = store
        return store

    def add_account(
        self,
        store_hash: str,
        scopes: tuple[str, ...] | list[str],
        *,
        token: str | None = None,
        name: str = "sandbox account",
    ) -> Account:
        if store_hash not in self.stores:
            raise SandboxError(404, f"no store {store_hash}")
        account = Account(store_hash, token or new_token(), new_token(), tuple(scopes), name)
        self.bigcommerce_accounts[account.access_token] = account
        return account

    def delete_account(self, client_id: str) -> Account:
        """The merchant deletes an API account: its token dies, and the hooks it made go too."""
        account = next(
            (a for a in self.bigcommerce_accounts.values() if a.client_id == client_id), None
        )
        if account is None:
            raise SandboxError(404, "no API account with that client id")
        del self.bigcommerce_accounts[account.access_token]
        store = self.stores.get(account.store_hash)
        if store is not None:
            store.hooks = {k: h for k, h in store.hooks.items() if h.client_id != client_id}
        return account

    def live_client_ids(self) -> set[str]:
        return {a.client_id for a in self.bigcommerce_accounts.values()}

    def quota_headers_for(self, store_hash: str) -> dict[str, str]:
        """The store's current X-Rate-Limit-* headers (a fresh window for an unknown store)."""
        store = self.stores.get(store_hash)
        if store is not None:
            return store.quota.peek()
        return quota_headers(self.clock, BIGCOMMERCE_QUOTAS[self.config.bigcommerce_plan])

    # lookups ------------------------------------------------------------------------------
    def shop(self, domain: str) -> ShopifyShop:
        found = self.shops.get(domain)
        if found is None:
            raise SandboxError(404, f"no shop {domain}")
        return found

    def store(self, store_hash: str) -> BigCommerceStore:
        found = self.stores.get(store_hash)
        if found is None:
            raise SandboxError(404, f"no store {store_hash}")
        return found

    # the GET /sandbox/state document (DESIGN.md §10) --------------------------------------
    def document(self, base_url: str) -> dict[str, Any]:
        base = base_url.rstrip("/")
        shopify_base = f"{base}/shopify/{{shop}}"
        bigcommerce_base = f"{base}/bigcommerce"
        return {
            "sandbox": base,
            "time_factor": self.clock.factor,
            "seed": self.config.seed,
            "shopify": {
                "client_id": self.config.shopify_client_id,
                "client_secret": self.config.shopify_client_secret,
                "api_version": self.config.api_version,
                "optional_scopes": list(self.config.shopify_optional_scopes),
                "base_url": shopify_base,
                "shops": [self._shop_json(shop, base) for shop in self.shops.values()],
            },
            "bigcommerce": {
                "base_url": bigcommerce_base,
                "stores": [self._store_json(store, base) for store in self.stores.values()],
                "accounts": [a.as_json() for a in self.bigcommerce_accounts.values()],
            },
            "settings": {
                "ATHOS_SHOPIFY_BASE_URL": shopify_base,
                "ATHOS_BIGCOMMERCE_BASE_URL": bigcommerce_base,
                "ATHOS_SHOPIFY_CLIENT_ID": self.config.shopify_client_id,
                "ATHOS_SHOPIFY_CLIENT_SECRET": self.config.shopify_client_secret,
            },
            "faults": self.faults.as_json(),
        }

    def _shop_json(self, shop: ShopifyShop, base: str) -> dict[str, Any]:
        return {
            "shop": shop.domain,
            "base_url": f"{base}/shopify/{shop.domain}",
            "authorize_url": f"{base}/shopify/{shop.domain}/admin/oauth/authorize",
            "graphql_url": f"{base}/shopify/{shop.domain}/admin/api/"
            f"{self.config.api_version}/graphql.json",
            "plan": shop.plan,
            "country": shop.data.country,
            "currency": shop.data.currency,
            "customers": shop.data.customers.count(),
            "orders": shop.data.orders.count(),
            "installed": shop.installed,
            "granted_scopes": sorted(shop.granted_scopes or ()),
            "optional_granted_scopes": sorted(shop.optional_granted),
            "required_scopes_revocable": shop.required_scopes_revocable,
            "withheld_scopes": sorted(shop.withheld_scopes),
            "webhook_subscriptions": [
                {"id": w.gid, "topic": w.topic, "uri": w.uri} for w in shop.webhooks.values()
            ],
        }

    def _store_json(self, store: BigCommerceStore, base: str) -> dict[str, Any]:
        return {
            "store_hash": store.store_hash,
            "store_id": store.store_id,
            "api_path": f"{base}/bigcommerce/stores/{store.store_hash}/v3/",
            "plan": store.plan,
            "requests_per_30s": None
            if store.quota.per_window == float("inf")
            else int(store.quota.per_window),
            "country": store.data.country,
            "currency": store.data.currency,
            "customers": store.data.customers.count(),
            "orders": store.data.orders.count(),
            "hooks": [hook.as_json() for hook in store.hooks.values()],
        }
