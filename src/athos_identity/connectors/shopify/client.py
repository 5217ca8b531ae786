"""Shopify HTTP: the GraphQL Admin API client and the OAuth token endpoint (httpx, async).

GraphQL pacing (DESIGN.md §9): every response's `extensions.cost.throttleStatus`
(`maximumAvailable`, `currentlyAvailable`, `restoreRate`) feeds a per-shop `CostPacer`
shared by every client of this process for that shop. Before a query goes out, the pacer
waits until the bucket holds the points the same query asked for last time (its
`requestedQueryCost`), and reserves them so concurrent callers don't overshoot. Then:

- a `THROTTLED` error (HTTP 200) waits (requested - available) / restoreRate and retries;
- a 429 waits `Retry-After` and retries;
- a 5xx, a timeout, a dropped connection or an unreadable body retries with exponential
  backoff and jitter;
- a 401 raises `CredentialRejected` at once (never retried), a 403 or an `ACCESS_DENIED`
  error `PermissionMissing`, other GraphQL errors `ShopifyQueryError`.

Tokens travel in headers or form bodies only; never logged, never in an exception or repr.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from athos_identity import observability
from athos_identity.kit.errors import AppError, ServiceUnavailable
from athos_identity.settings import get_settings

log = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0
MAX_WAIT_SECONDS = 60.0  # a Retry-After or a bucket wait longer than this is capped
CONNECT_TIMEOUT_SECONDS = 10.0
DEFAULT_QUERY_COST = 10.0  # a query never seen before: assume a mutation's cost
TOKEN_RETRIES = 2

Sleep = Callable[[float], Awaitable[None]]


# --- errors ---------------------------------------------------------------------------------


class ShopifyError(AppError):
    """Shopify answered something this client cannot turn into data."""

    status, title, slug = 502, "Shopify error", "shopify-error"

    def __init__(self, detail: str, *, platform_status: int | None = None, **kw: Any) -> None:
        super().__init__(detail, platform_status=platform_status, **kw)
        self.platform_status = platform_status


class CredentialRejected(ShopifyError):
    """The access token is dead (401) or the refresh token was refused (`invalid_grant`).

    Not retried: the connector needs the merchant to Grant Access again. `tokens` moves
    the connector to `needs_reauthorization` before raising it."""

    status, title, slug = 409, "Shopify authorization rejected", "shopify-credential-rejected"


class InvalidGrant(CredentialRejected):
    """The token endpoint answered `invalid_grant` (used/expired code or refresh token)."""


class PermissionMissing(ShopifyError):
    """403 or ACCESS_DENIED: the grant lacks a scope this query needs."""

    status, title, slug = 409, "Shopify permission missing", "shopify-permission-missing"


class ShopifyQueryError(ShopifyError):
    """GraphQL errors other than throttling and access (a bad query, an unknown field)."""

    def __init__(self, detail: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail, platform_status=200)
        self.graphql_errors = errors or []


class ShopifyUnavailable(ShopifyError):
    """Still failing (THROTTLED, 429, 5xx, network) after every retry; transient."""

    status, title, slug = 503, "Shopify unavailable", "shopify-unavailable"


class ShopifyNotConfigured(ServiceUnavailable):
    title, slug = "Shopify app not configured", "shopify-not-configured"


def utcnow() -> datetime:
    """The service's clock for token expiries (tests move it with the sandbox's clock)."""
    return datetime.now(UTC)


# --- URLs and app credentials ---------------------------------------------------------------


def shop_url(shop: str) -> str:
    """`https://{shop}` in production, `{sandbox}/shopify/{shop}` against the sandbox."""
    return get_settings().shopify_base_url.format(shop=shop).rstrip("/")


def app_credentials() -> tuple[str, str]:
    settings = get_settings()
    if not settings.shopify_client_id or settings.shopify_client_secret is None:
        raise ShopifyNotConfigured(
            "Set ATHOS_SHOPIFY_CLIENT_ID and ATHOS_SHOPIFY_CLIENT_SECRET to connect Shopify."
        )
    return settings.shopify_client_id, settings.shopify_client_secret.get_secret_value()


def app_secrets() -> list[str]:
    """The current client secret, then the previous one (during a rotation)."""
    settings = get_settings()
    found = [settings.shopify_client_secret, settings.shopify_previous_client_secret]
    return [s.get_secret_value() for s in found if s is not None and s.get_secret_value()]


def default_timeout() -> httpx.Timeout:
    return httpx.Timeout(get_settings().shopify_timeout_seconds, connect=CONNECT_TIMEOUT_SECONDS)


# --- pacing ---------------------------------------------------------------------------------


@dataclass
class CostPacer:
    """The shop's query-cost bucket as its last response described it; shared per shop."""

    clock: Callable[[], float] = time.monotonic
    maximum: float | None = None
    available: float | None = None  # points at `stamp`
    restore_rate: float = 50.0  # points per second
    stamp: float = 0.0
    waits: int = 0
    waited_seconds: float = 0.0
    costs: dict[str, float] = field(default_factory=dict)  # query digest -> requested cost

    def estimate(self) -> float | None:
        if self.available is None:
            return None
        restored = self.available + (self.clock() - self.stamp) * self.restore_rate
        return min(self.maximum or restored, restored)

    def delay(self, cost: float) -> float:
        available = self.estimate()
        if available is None or available >= cost or self.restore_rate <= 0:
            return 0.0
        return (cost - available) / self.restore_rate

    async def acquire(self, cost: float, sleep: Sleep) -> None:
        """Wait until the bucket holds `cost`, then reserve it."""
        while (wait := self.delay(cost)) > 0:
            self.waits += 1
            self.waited_seconds += wait
            observability.platform_wait("shopify", "pacing", wait)
            log.info("Shopify cost bucket low; waiting %.2fs for %.0f points", wait, cost)
            await sleep(min(wait, MAX_WAIT_SECONDS))
        available = self.estimate()
        if available is not None:
            self.available = available - cost
            self.stamp = self.clock()

    def observe(self, throttle_status: dict[str, Any] | None) -> None:
        if not isinstance(throttle_status, dict):
            return
        try:
            available = float(throttle_status["currentlyAvailable"])
            maximum = float(throttle_status["maximumAvailable"])
            rate = float(throttle_status["restoreRate"])
        except (KeyError, TypeError, ValueError):
            return
        self.available, self.maximum, self.stamp = available, maximum, self.clock()
        if rate > 0:
            self.restore_rate = rate


_pacers: dict[tuple[str, str], CostPacer] = {}


def pacer_for(base_url: str, shop: str) -> CostPacer:
    return _pacers.setdefault((base_url, shop), CostPacer())


def backoff_seconds(attempt: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random, capped."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt)
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


def retry_after_seconds(headers: httpx.Headers) -> float:
    try:
        seconds = float(headers.get("Retry-After", "1"))
    except ValueError:
        seconds = 1.0
    return min(MAX_WAIT_SECONDS, max(seconds, 0.1))


class _Retry(Exception):
    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait


def _digest(gql: str) -> str:
    return hashlib.sha256(gql.encode()).hexdigest()[:16]


# --- GraphQL --------------------------------------------------------------------------------


class ShopifyClient:
    """One shop's GraphQL Admin API with one access token. `async with ShopifyClient(...)`.

    `await client.query(gql, variables)` returns the response's `data`; `last_cost` keeps
    the response's `extensions.cost` (requested/actual cost, throttle status)."""

    def __init__(
        self,
        shop: str,
        token: str,
        *,
        api_version: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        max_retries: int | None = None,
        pacer: CostPacer | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> None:
        settings = get_settings()
        self.shop = shop
        self.api_version = api_version or settings.shopify_api_version
        base = shop_url(shop)
        self.endpoint = f"{base}/admin/api/{self.api_version}/graphql.json"
        self.pacer = pacer or pacer_for(base, shop)
        self.max_retries = settings.shopify_max_retries if max_retries is None else max_retries
        self.last_cost: dict[str, Any] | None = None
        self._sleep = sleep
        self._http = httpx.AsyncClient(
            headers={
                "X-Shopify-Access-Token": token,
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": "athos-identity",
            },
            timeout=timeout or default_timeout(),
            transport=transport,
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"ShopifyClient(shop={self.shop!r})"

    async def __aenter__(self) -> ShopifyClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def query(self, gql: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run a query or mutation with pacing and retries; returns `data`."""
        body = await self.execute(gql, variables)
        data = body.get("data")
        if not isinstance(data, dict):
            raise ShopifyQueryError("Shopify answered without data.")
        return data

    async def execute(self, gql: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The whole response body (`data`, `extensions`) after pacing and retries."""
        key = _digest(gql)
        payload = {"query": gql, "variables": variables or {}}
        attempt = 0
        while True:
            await self.pacer.acquire(self.pacer.costs.get(key, DEFAULT_QUERY_COST), self._sleep)
            try:
                response = await self._http.post(self.endpoint, json=payload)
                body = self._check(response)
                cost = (body.get("extensions") or {}).get("cost")
                if isinstance(cost, dict):
                    self.last_cost = cost
                    self.pacer.observe(cost.get("throttleStatus"))
                    requested = cost.get("requestedQueryCost")
                    if isinstance(requested, int | float):
                        self.pacer.costs[key] = float(requested)
                self._raise_for_errors(body, cost)
            except (httpx.TimeoutException, httpx.TransportError) as error:
                retry = _Retry(type(error).__name__)
            except _Retry as pending:
                retry = pending
            else:
                return body
            if attempt >= self.max_retries:
                raise ShopifyUnavailable(
                    f"Shopify kept failing for {self.shop} ({retry.reason}); "
                    f"gave up after {attempt + 1} attempts."
                )
            wait = retry.wait if retry.wait is not None else backoff_seconds(attempt)
            log.info(
                "Shopify %s: %s; retry %d in %.2fs", self.shop, retry.reason, attempt + 1, wait
            )
            if wait > 0:
                await self._sleep(min(wait, MAX_WAIT_SECONDS))
            attempt += 1

    def _check(self, response: httpx.Response) -> dict[str, Any]:
        status = response.status_code
        if status == 429:
            observability.platform_wait("shopify", "429", retry_after_seconds(response.headers))
            raise _Retry("429", wait=retry_after_seconds(response.headers))
        if status >= 500:
            raise _Retry(f"HTTP {status}")
        if status == 401:
            raise CredentialRejected(
                f"Shopify rejected the access token of {self.shop} (401): the app was "
                "uninstalled or its access revoked; Grant Access again.",
                platform_status=401,
            )
        if status == 403:
            raise PermissionMissing(
                f"The Shopify grant of {self.shop} lacks a scope this request needs (403).",
                platform_status=403,
            )
        if status == 402:
            raise ShopifyError(
                f"The Shopify store {self.shop} is frozen (402 Payment Required).",
                platform_status=402,
            )
        if status == 423:
            raise ShopifyError(
                f"The Shopify store {self.shop} is locked (423).", platform_status=423
            )
        if status == 404:
            raise ShopifyError(
                f"Shopify has no store {self.shop} or no API version {self.api_version} (404).",
                platform_status=404,
            )
        if status >= 400:
            raise ShopifyError(f"Shopify answered {status}.", platform_status=status)
        try:
            body = response.json()
        except ValueError as error:  # truncated or garbled: transient
            raise _Retry("unreadable JSON body") from error
        if not isinstance(body, dict):
            raise _Retry("unexpected JSON body")
        return body

    def _raise_for_errors(self, body: dict[str, Any], cost: Any) -> None:
        errors = body.get("errors")
        if not errors:
            return
        if not isinstance(errors, list):  # e.g. {"errors": "Not Found"}
            raise ShopifyQueryError(f"Shopify answered an error: {str(errors)[:200]}")
        codes = {
            str((e.get("extensions") or {}).get("code") or "")
            for e in errors
            if isinstance(e, dict)
        }
        if "THROTTLED" in codes:
            observability.platform_wait("shopify", "throttled", self._throttled_wait(cost))
            raise _Retry("THROTTLED", wait=self._throttled_wait(cost))
        if "ACCESS_DENIED" in codes:
            raise PermissionMissing(
                f"The Shopify grant of {self.shop} lacks a scope this query needs (ACCESS_DENIED).",
                platform_status=200,
            )
        if "INTERNAL_SERVER_ERROR" in codes:
            raise _Retry("INTERNAL_SERVER_ERROR")
        messages = "; ".join(
            str(e.get("message", ""))[:200] for e in errors[:3] if isinstance(e, dict)
        )
        raise ShopifyQueryError(f"Shopify refused the query: {messages}", errors=errors)

    def _throttled_wait(self, cost: Any) -> float:
        if not isinstance(cost, dict):
            return 1.0
        status = cost.get("throttleStatus") or {}
        try:
            needed = float(cost["requestedQueryCost"]) - float(status["currentlyAvailable"])
            rate = float(status["restoreRate"])
        except (KeyError, TypeError, ValueError):
            return 1.0
        if rate <= 0:
            return 1.0
        return min(MAX_WAIT_SECONDS, max(needed, 1.0) / rate)


# --- OAuth token endpoint -------------------------------------------------------------------


@dataclass(frozen=True)
class TokenGrant:
    """What the token endpoint answered; `repr` shows no secret."""

    access_token: str = field(repr=False)
    scopes: tuple[str, ...]
    expires_at: datetime | None
    refresh_token: str | None = field(default=None, repr=False)
    refresh_expires_at: datetime | None = None


def parse_scopes(raw: str | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(s.strip() for s in (raw or "").split(",") if s.strip()))


def _grant_from(body: Any, now: datetime) -> TokenGrant:
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        raise ShopifyError("Shopify's token endpoint answered without an access token.")

    def after(seconds: Any) -> datetime | None:
        try:
            return now + timedelta(seconds=float(seconds)) if seconds is not None else None
        except (TypeError, ValueError):
            return None

    refresh = body.get("refresh_token")
    return TokenGrant(
        access_token=body["access_token"],
        scopes=parse_scopes(body.get("scope")),
        expires_at=after(body.get("expires_in")),
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        refresh_expires_at=after(body.get("refresh_token_expires_in")),
    )


async def request_token(
    shop: str,
    form: dict[str, str],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Sleep = asyncio.sleep,
) -> TokenGrant:
    """POST {shop}/admin/oauth/access_token with the app's credentials.

    Retried only when Shopify surely did not act (connection refused, 429, 5xx): a code or
    refresh token works once, so a request whose answer was lost is not sent again."""
    client_id, client_secret = app_credentials()
    url = f"{shop_url(shop)}/admin/oauth/access_token"
    data = {"client_id": client_id, "client_secret": client_secret, **form}
    async with httpx.AsyncClient(
        timeout=default_timeout(), transport=transport, follow_redirects=False
    ) as http:
        for attempt in range(TOKEN_RETRIES + 1):
            now = utcnow()
            try:
                response = await http.post(url, data=data, headers={"Accept": "application/json"})
            except (httpx.ConnectError, httpx.ConnectTimeout) as error:
                reason = type(error).__name__
            except (httpx.TimeoutException, httpx.TransportError) as error:
                raise ShopifyUnavailable(
                    f"Shopify's token endpoint for {shop} did not answer ({type(error).__name__})."
                ) from None
            else:
                if response.status_code < 400:
                    try:
                        return _grant_from(response.json(), now)
                    except ValueError:
                        raise ShopifyError(
                            "Shopify's token endpoint answered an unreadable body."
                        ) from None
                if response.status_code != 429 and response.status_code < 500:
                    raise _token_error(shop, response)
                reason = f"HTTP {response.status_code}"
            if attempt < TOKEN_RETRIES:
                await sleep(backoff_seconds(attempt))
        raise ShopifyUnavailable(f"Shopify's token endpoint for {shop} kept failing ({reason}).")


def _token_error(shop: str, response: httpx.Response) -> ShopifyError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    error = str(body.get("error", "")) if isinstance(body, dict) else ""
    status = response.status_code
    if error == "invalid_grant":
        return InvalidGrant(
            f"Shopify refused the grant for {shop} (invalid_grant): the code or refresh token "
            "was already used, expired, or the app was uninstalled.",
            platform_status=status,
        )
    if error == "invalid_client" or status == 401:
        return ShopifyError(
            "Shopify refused the app's client credentials (invalid_client): check "
            "ATHOS_SHOPIFY_CLIENT_ID and ATHOS_SHOPIFY_CLIENT_SECRET.",
            platform_status=status,
        )
    return ShopifyError(
        f"Shopify's token endpoint answered {status} {error or ''}".strip() + ".",
        platform_status=status,
    )


async def exchange_code(
    shop: str, code: str, *, transport: httpx.AsyncBaseTransport | None = None
) -> TokenGrant:
    """Authorization code -> expiring offline access token and its refresh token."""
    return await request_token(shop, {"code": code, "expiring": "1"}, transport=transport)


async def refresh_access_token(
    shop: str, refresh_token: str, *, transport: httpx.AsyncBaseTransport | None = None
) -> TokenGrant:
    """A new access token and a new refresh token (the old one stops working)."""
    return await request_token(
        shop,
        {"grant_type": "refresh_token", "refresh_token": refresh_token},
        transport=transport,
    )
