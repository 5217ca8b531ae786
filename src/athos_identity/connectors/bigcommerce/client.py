"""BigCommerce REST client (httpx, async) with the store's rate-limit pacing built in.

One pacing mechanism serves every caller (token validation, pulls, hook registration):

- every response's `X-Rate-Limit-Requests-Left` / `-Time-Reset-Ms` feed a per-store
  `RateLimitPacer`, shared by all clients of this process for that store (the quota is the
  store's, shared by every app); when no request is left, callers wait for the reset;
- a 429 waits max(`X-Rate-Limit-Time-Reset-Ms`, `X-Retry-After`) then retries;
- a 5xx, a timeout, a dropped connection or a truncated body retries with exponential
  backoff and jitter;
- a 401 raises `CredentialRejected` at once (never retried: the token is dead), a 403
  `PermissionMissing`.

The access token travels in the `X-Auth-Token` header only; it is never logged, never put
in an exception and never in `repr()`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

import httpx

from athos_identity import observability
from athos_identity.kit.errors import AppError
from athos_identity.settings import get_settings

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 250
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0
MAX_WAIT_SECONDS = 120.0  # a reset or Retry-After longer than this is capped
CONNECT_TIMEOUT_SECONDS = 10.0

Sleep = Callable[[float], Awaitable[None]]


# --- errors ---------------------------------------------------------------------------------


class BigCommerceError(AppError):
    """BigCommerce answered something this client cannot turn into data."""

    status, title, slug = 502, "BigCommerce error", "bigcommerce-error"

    def __init__(self, detail: str, *, platform_status: int | None = None, **kw: Any) -> None:
        super().__init__(detail, platform_status=platform_status, **kw)
        self.platform_status = platform_status


class CredentialRejected(BigCommerceError):
    """401: the token is invalid, was deleted, or belongs to another store. Not retried."""

    status, title, slug = 422, "BigCommerce token rejected", "bigcommerce-token-rejected"


class PermissionMissing(BigCommerceError):
    """403: the API account lacks the scope this endpoint needs."""

    status, title, slug = 422, "BigCommerce permission missing", "bigcommerce-permission-missing"


class StoreNotFound(BigCommerceError):
    status, title, slug = 422, "BigCommerce store not found", "bigcommerce-store-not-found"


class BigCommerceUnavailable(BigCommerceError):
    """Still failing (429, 5xx, network) after every retry; transient, try again later."""

    status, title, slug = 503, "BigCommerce unavailable", "bigcommerce-unavailable"


# --- pacing ---------------------------------------------------------------------------------


@dataclass
class RateLimitPacer:
    """What the store's last responses said about its quota; shared per store."""

    clock: Callable[[], float] = time.monotonic
    requests_left: int | None = None
    quota: int | None = None
    reset_at: float = 0.0  # clock time the current window ends
    waits: int = 0  # how many times a caller had to wait (metrics, tests)
    waited_seconds: float = 0.0

    def delay(self) -> float:
        """Seconds to wait before the next request may go (0 when it may go now)."""
        now = self.clock()
        if self.requests_left is None:
            return 0.0
        if now >= self.reset_at:
            self.requests_left = None  # the window was reset; the next response will tell
            return 0.0
        return self.reset_at - now if self.requests_left <= 0 else 0.0

    async def acquire(self, sleep: Sleep) -> None:
        """Wait until a request may go, then reserve it (concurrent callers don't overshoot)."""
        while (wait := self.delay()) > 0:
            self.waits += 1
            self.waited_seconds += wait
            observability.platform_wait("bigcommerce", "pacing", wait)
            log.info("BigCommerce quota spent; waiting %.2fs for the window to reset", wait)
            await sleep(min(wait, MAX_WAIT_SECONDS))
        if self.requests_left is not None:
            self.requests_left -= 1

    def observe(self, headers: httpx.Headers) -> None:
        left = _int_header(headers, "X-Rate-Limit-Requests-Left")
        reset_ms = _int_header(headers, "X-Rate-Limit-Time-Reset-Ms")
        quota = _int_header(headers, "X-Rate-Limit-Requests-Quota")
        if quota is not None:
            self.quota = quota
        if left is not None:
            self.requests_left = left
            if reset_ms is not None:
                self.reset_at = self.clock() + reset_ms / 1000

    def block_for(self, seconds: float) -> None:
        """After a 429: nobody sends until `seconds` have passed."""
        self.requests_left = 0
        self.reset_at = max(self.reset_at, self.clock() + seconds)


def _int_header(headers: httpx.Headers, name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


_pacers: dict[tuple[str, str], RateLimitPacer] = {}


def pacer_for(base_url: str, store_hash: str) -> RateLimitPacer:
    """The process-wide pacer of one store."""
    return _pacers.setdefault((base_url, store_hash), RateLimitPacer())


def backoff_seconds(attempt: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random, capped."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt)
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


def retry_wait_after_429(headers: httpx.Headers) -> float:
    reset_ms = _int_header(headers, "X-Rate-Limit-Time-Reset-Ms") or 0
    retry_after = headers.get("X-Retry-After") or headers.get("Retry-After")
    try:
        retry_seconds = float(retry_after) if retry_after is not None else 0.0
    except ValueError:
        retry_seconds = 0.0
    wait = max(reset_ms / 1000, retry_seconds)
    return min(MAX_WAIT_SECONDS, wait if wait > 0 else 1.0)


# --- pages ----------------------------------------------------------------------------------


@dataclass
class Page:
    """One page of a list: raw BigCommerce JSON objects (they hold PII: keep in memory)."""

    items: list[dict[str, Any]]
    page: int
    next_page: int | None  # None at the end
    total: int | None = None  # V3 lists say how many records match; V2 doesn't


def iso_utc(moment: datetime) -> str:
    """V3 date filters: ISO 8601 in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc2822_utc(moment: datetime) -> str:
    """V2 date filters: RFC 2822 in UTC, e.g. `Tue, 01 Dec 2026 10:00:00 +0000`."""
    return format_datetime(moment.astimezone(UTC)).replace("-0000", "+0000")


def parse_iso(value: str | None) -> datetime | None:
    """V3 dates (`2026-12-01T10:00:00Z`)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def parse_rfc2822(value: str | None) -> datetime | None:
    """V2 dates (`Tue, 01 Dec 2026 10:00:00 +0000`)."""
    return parsedate_to_datetime(value) if value else None


@dataclass(frozen=True)
class KeyedCursor:
    """Where a pull ordered by `date_modified` stands, keyed on dates rather than offsets.

    Page numbers over `sort=date_modified:asc` shift while the store changes: a record
    modified during the pull moves to the end and every later record moves back one place,
    so one unread record slips onto an already-read page. So after each page the next
    query starts again at page 1 from the last `date_modified` seen (the filter is
    inclusive: the records of that second come again and are skipped by id, `seen`).
    Only when a whole page shares one date (a bulk import) does the cursor page on within
    that date, until the date advances: a record of such a group changed meanwhile can
    still shift the group by one (V3 customers offer no id range to key on).
    """

    since: datetime | None = None  # date_modified:min / min_date_modified (None: all)
    page: int = 1
    seen: frozenset[int] = frozenset()  # ids already read whose date_modified is `since`

    def fresh(self, items: list[dict[str, Any]], dates: list[datetime | None]) -> list[int]:
        """Indexes of the page's records not read before."""
        return [
            index
            for index, (item, modified) in enumerate(zip(items, dates, strict=True))
            if not (modified is not None and modified == self.since and item["id"] in self.seen)
        ]

    def after(
        self, items: list[dict[str, Any]], dates: list[datetime | None], *, more: bool
    ) -> KeyedCursor | None:
        """The cursor after this page; None when the list has ended."""
        if not more:
            return None
        known = [d for d in dates if d is not None]
        last = max(known, default=None)
        if last is None:  # no dates to key on: plain page numbers
            return KeyedCursor(self.since, self.page + 1, frozenset())
        at_last = frozenset(item["id"] for item, d in zip(items, dates, strict=True) if d == last)
        if self.since is not None and last <= self.since:  # the whole page shares one date
            return KeyedCursor(self.since, self.page + 1, at_last)
        return KeyedCursor(last, 1, at_last)

    def as_position(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "page": self.page,
            "seen": sorted(self.seen),
        }

    @classmethod
    def from_position(cls, position: Any, since: datetime | None) -> KeyedCursor:
        """A checkpointed position, or the start of a pull from `since` (no position yet)."""
        if not isinstance(position, dict):
            return cls(since)
        stored = position.get("since")
        return cls(
            datetime.fromisoformat(stored) if stored else None,
            int(position.get("page") or 1),
            frozenset(int(i) for i in position.get("seen") or ()),
        )


@dataclass
class KeyedPage:
    """The records of one keyed page not read before, and the cursor after it."""

    items: list[dict[str, Any]]
    after: KeyedCursor | None  # None at the end
    total: int | None = None  # V3: records modified at or after the cursor's date


# --- the client -----------------------------------------------------------------------------


class BigCommerceClient:
    """Calls one store's API with one token. Use as `async with BigCommerceClient(...)`."""

    def __init__(
        self,
        store_hash: str,
        access_token: str,
        *,
        base_url: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        max_retries: int | None = None,
        pacer: RateLimitPacer | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> None:
        settings = get_settings()
        base = (base_url or settings.bigcommerce_base_url).rstrip("/")
        self.store_hash = store_hash
        self.store_url = f"{base}/stores/{store_hash}"
        self.pacer = pacer or pacer_for(base, store_hash)
        self.max_retries = settings.bigcommerce_max_retries if max_retries is None else max_retries
        self._sleep = sleep
        self._http = httpx.AsyncClient(
            base_url=self.store_url,
            headers={
                "X-Auth-Token": access_token,
                "Accept": "application/json",
                "User-Agent": "athos-identity",
            },
            timeout=timeout
            or httpx.Timeout(settings.bigcommerce_timeout_seconds, connect=CONNECT_TIMEOUT_SECONDS),
            transport=transport,
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"BigCommerceClient(store_hash={self.store_hash!r})"

    async def __aenter__(self) -> BigCommerceClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- transport with pacing and retries --------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        allow: frozenset[int] = frozenset(),
    ) -> tuple[httpx.Response, Any]:
        """Send with pacing and retries; returns the response and its parsed JSON (or None).

        Statuses in `allow` are returned instead of raised (e.g. 403 for scope probes)."""
        attempt = 0
        while True:
            await self.pacer.acquire(self._sleep)
            try:
                response = await self._http.request(method, path, params=params, json=json)
                self.pacer.observe(response.headers)
                if response.status_code in allow:
                    return response, None
                if response.status_code == 429:
                    wait = retry_wait_after_429(response.headers)
                    observability.platform_wait("bigcommerce", "429", 0.0)  # waited as pacing
                    self.pacer.block_for(wait)
                    raise _Retry(f"429 (waiting {wait:.1f}s)", wait=0.0)
                if response.status_code >= 500:
                    raise _Retry(f"HTTP {response.status_code}")
                self._raise_for_status(method, path, response)
                body = self._parse(response)
            except (httpx.TimeoutException, httpx.TransportError) as error:
                retry = _Retry(type(error).__name__)
            except _Retry as pending:
                retry = pending
            else:
                log.debug("BigCommerce %s %s -> %s", method, path, response.status_code)
                return response, body
            if attempt >= self.max_retries:
                raise BigCommerceUnavailable(
                    f"BigCommerce kept failing on {method} {path} ({retry.reason}); "
                    f"gave up after {attempt + 1} attempts."
                )
            wait = retry.wait if retry.wait is not None else backoff_seconds(attempt)
            log.info(
                "BigCommerce %s %s failed (%s); retry %d in %.2fs",
                method, path, retry.reason, attempt + 1, wait,
            )  # fmt: skip
            if wait > 0:
                await self._sleep(wait)
            attempt += 1

    def _parse(self, response: httpx.Response) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as error:  # truncated or garbled body: transient
            raise _Retry("unreadable JSON body") from error

    def _raise_for_status(self, method: str, path: str, response: httpx.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        where = f"{method} {path}"
        if status == 401:
            raise CredentialRejected(
                f"BigCommerce rejected the access token for store {self.store_hash} (401 on "
                f"{where}): the API account was deleted, or the token is for another store.",
                platform_status=401,
            )
        if status == 403:
            raise PermissionMissing(
                f"The BigCommerce API account lacks the permission {where} needs (403).",
                platform_status=403,
            )
        if status == 404 and path.startswith("/v3/hooks") and method == "GET":
            raise StoreNotFound(
                f"BigCommerce has no store with hash {self.store_hash}.", platform_status=404
            )
        raise BigCommerceError(f"BigCommerce answered {status} to {where}.", platform_status=status)

    async def get(self, path: str, **params: Any) -> Any:
        return (await self.request("GET", path, params=params or None))[1]

    async def get_or_none(self, path: str, **params: Any) -> Any:
        """Like `get`, but None for a record that does not exist (404)."""
        response, body = await self.request(
            "GET", path, params=params or None, allow=frozenset({404})
        )
        return None if response.status_code == 404 else body

    # -- validation ------------------------------------------------------------------------

    async def check_token(self) -> None:
        """GET /v3/hooks needs a valid token and no scope: 401 -> CredentialRejected."""
        await self.request("GET", "/v3/hooks", params={"limit": 1})

    async def has_read_access(self, path: str) -> bool:
        """Probe one scope with a one-item read: False on 403 (the scope is missing)."""
        response, _ = await self.request("GET", path, params={"limit": 1}, allow=frozenset({403}))
        return response.status_code != 403

    # -- customers (V3) --------------------------------------------------------------------

    async def customers_page(
        self,
        *,
        page: int = 1,
        limit: int = MAX_PAGE_SIZE,
        modified_since: datetime | None = None,
        include_addresses: bool = True,
    ) -> Page:
        """Customers by date_modified ascending (oldest change first), one page."""
        params: dict[str, Any] = {
            "page": page,
            "limit": min(limit, MAX_PAGE_SIZE),
            "sort": "date_modified:asc",
        }
        if modified_since is not None:
            params["date_modified:min"] = iso_utc(modified_since)
        if include_addresses:
            params["include"] = "addresses"
        _, body = await self.request("GET", "/v3/customers", params=params)
        body = body or {}
        items = list(body.get("data") or [])
        pagination = (body.get("meta") or {}).get("pagination") or {}
        total_pages = int(pagination.get("total_pages") or 0)
        return Page(
            items=items,
            page=page,
            next_page=page + 1 if page < total_pages else None,
            total=pagination.get("total"),
        )

    async def customers_after(
        self, cursor: KeyedCursor, *, limit: int = MAX_PAGE_SIZE
    ) -> KeyedPage:
        """The next customers after `cursor` (keyed paging, see `KeyedCursor`)."""
        page = await self.customers_page(page=cursor.page, limit=limit, modified_since=cursor.since)
        dates = [parse_iso(item.get("date_modified")) for item in page.items]
        fresh = cursor.fresh(page.items, dates)
        return KeyedPage(
            items=[page.items[i] for i in fresh],
            after=cursor.after(page.items, dates, more=page.next_page is not None),
            total=page.total,
        )

    async def iter_customers(
        self, *, modified_since: datetime | None = None, limit: int = MAX_PAGE_SIZE
    ) -> AsyncIterator[KeyedPage]:
        cursor: KeyedCursor | None = KeyedCursor(modified_since)
        while cursor is not None:
            result = await self.customers_after(cursor, limit=limit)
            yield result
            cursor = result.after

    # -- orders (V2) -----------------------------------------------------------------------

    async def orders_page(
        self,
        *,
        page: int = 1,
        limit: int = MAX_PAGE_SIZE,
        modified_since: datetime | None = None,
        include_lines: bool = True,
    ) -> Page:
        """Orders by date_modified ascending; V2 answers a bare array, 204 past the end.

        With `include_lines`, line items come embedded (`consignments.line_items`)."""
        size = min(limit, MAX_PAGE_SIZE)
        params: dict[str, Any] = {"page": page, "limit": size, "sort": "date_modified:asc"}
        if modified_since is not None:
            params["min_date_modified"] = rfc2822_utc(modified_since)
        if include_lines:
            params["include"] = "consignments.line_items"
        response, body = await self.request("GET", "/v2/orders", params=params)
        items = [] if response.status_code == 204 or body is None else list(body)
        return Page(items=items, page=page, next_page=page + 1 if len(items) == size else None)

    async def orders_count(self, *, modified_since: datetime | None = None) -> int | None:
        """How many orders were modified since then (V2 lists carry no total)."""
        params = {"min_date_modified": rfc2822_utc(modified_since)} if modified_since else {}
        body = await self.get("/v2/orders/count", **params)
        count = body.get("count") if isinstance(body, dict) else None
        return count if isinstance(count, int) else None

    async def orders_after(self, cursor: KeyedCursor, *, limit: int = MAX_PAGE_SIZE) -> KeyedPage:
        """The next orders after `cursor`, lines embedded (keyed paging, see `KeyedCursor`)."""
        page = await self.orders_page(page=cursor.page, limit=limit, modified_since=cursor.since)
        dates = [parse_rfc2822(item.get("date_modified")) for item in page.items]
        fresh = cursor.fresh(page.items, dates)
        return KeyedPage(
            items=[page.items[i] for i in fresh],
            after=cursor.after(page.items, dates, more=page.next_page is not None),
        )

    async def iter_orders(
        self, *, modified_since: datetime | None = None, limit: int = MAX_PAGE_SIZE
    ) -> AsyncIterator[KeyedPage]:
        cursor: KeyedCursor | None = KeyedCursor(modified_since)
        while cursor is not None:
            result = await self.orders_after(cursor, limit=limit)
            yield result
            cursor = result.after

    async def order_products(self, order_id: int) -> list[dict[str, Any]]:
        """All lines of one order (for orders whose embedded lines were capped)."""
        lines: list[dict[str, Any]] = []
        page = 1
        while True:
            response, body = await self.request(
                "GET",
                f"/v2/orders/{int(order_id)}/products",
                params={"page": page, "limit": MAX_PAGE_SIZE},
            )
            batch = [] if response.status_code == 204 or body is None else list(body)
            lines += batch
            if len(batch) < MAX_PAGE_SIZE:
                return lines
            page += 1

    # -- hooks (V3) ------------------------------------------------------------------------

    async def list_hooks(self) -> list[dict[str, Any]]:
        hooks: list[dict[str, Any]] = []
        page = 1
        while True:
            _, body = await self.request(
                "GET", "/v3/hooks", params={"page": page, "limit": MAX_PAGE_SIZE}
            )
            body = body or {}
            hooks += body.get("data") or []
            pagination = (body.get("meta") or {}).get("pagination") or {}
            if page >= int(pagination.get("total_pages") or 1):
                return hooks
            page += 1

    async def create_hook(
        self, scope: str, destination: str, headers: dict[str, str]
    ) -> dict[str, Any]:
        _, body = await self.request(
            "POST",
            "/v3/hooks",
            json={
                "scope": scope,
                "destination": destination,
                "is_active": True,
                "headers": headers,
            },
        )
        return dict((body or {}).get("data") or {})

    async def delete_hook(self, hook_id: int) -> None:
        await self.request("DELETE", f"/v3/hooks/{int(hook_id)}", allow=frozenset({404}))


class _Retry(Exception):
    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait
