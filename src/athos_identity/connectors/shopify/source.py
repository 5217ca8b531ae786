"""Shopify as a pull source (DESIGN.md §5, §9): customers and orders as neutral records.

Full sync (`since` is None): one bulk operation per stream (`bulk.py`).
- Right after the operation starts, an empty page checkpoints `{"bulk": id, ...}`, so a run
  killed while Shopify is still exporting resumes polling the same operation.
- Customers have no children: pages of 250 are yielded as the JSONL downloads; the position
  is `{"bulk": id, "lines": n}`, the rows already committed, skipped on resume.
- Orders are complete only at the end of the file (children may come anywhere): rows are
  spilled to an encrypted temporary file, then orders are yielded in id order; the position
  is `{"bulk": id, "after": last order id}`.
- FAILED, CANCELED, EXPIRED or stalled operations: the export is run again over smaller
  date windows (`windows.py`): the failed window `[A, B)` on `updated_at` is replaced by its
  two halves, each exported with `query: "updated_at:>='A' AND updated_at:<'B'"`, one after
  the other; a window that fails again is halved again, down to `windows.MIN_WINDOW`, then
  `TransientSourceError` (the job retries later, from the checkpoint). The position carries
  the windows still to do (`windows`, the current one first) and how many are done
  (`done`), besides the current window's `bulk`/`lines`/`after`: a restart resumes the
  in-flight window's operation, and never exports a completed window again. Orders are
  joined to their lines within a window's file (a line is exported with its order, in the
  window of the order's `updated_at`). An expired result URL runs the same window again (up
  to `MAX_OPERATIONS` times). A cut or dropped download is fetched again
  (`DOWNLOAD_RETRIES`), skipping what was committed.

Incremental sync: the `customers`/`orders` connections, oldest change first
(`sortKey: UPDATED_AT`, `query: "updated_at:>='…'"`); the position is the page cursor. Pages
are sized to stay under Shopify's 1000-point query cost: 240 customers (4 points each), 25
orders with their first 5 lines; an order with more lines has the rest read by
`order(id) { lineItems }` before its page is yielded.

Errors: throttling, 429, 5xx, timeouts and cut bodies are retried by `ShopifyClient`; what
is still failing becomes `TransientSourceError` (the job retries from the checkpoint). A 401
is checked against the stored token first (another process may have refreshed it); if ours
is the current one, the connector is marked `needs_reauthorization` and `CredentialRejected`
raised. Tokens are re-read every few minutes, so a long export outlives the 1-hour access
token (`tokens.shopify_access_token` refreshes it, and marks the connector on
`invalid_grant`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx

from athos_identity import db
from athos_identity.connectors import service as connectors
from athos_identity.connectors.models import Platform
from athos_identity.connectors.shopify import client as shopify_client
from athos_identity.connectors.shopify import tokens, windows
from athos_identity.connectors.shopify.bulk import (
    POLL_FIRST_SECONDS,
    POLL_MAX_SECONDS,
    RUNNING,
    BulkGone,
    BulkRunner,
    Operation,
    OrderSpill,
    Truncated,
    UrlExpired,
    jsonl_rows,
)
from athos_identity.connectors.shopify.client import (
    CredentialRejected,
    ShopifyClient,
    ShopifyUnavailable,
    backoff_seconds,
)
from athos_identity.connectors.shopify.mapping import (
    CUSTOMER_FIELDS,
    LINE_FIELDS,
    ORDER_FIELDS,
    customer_record,
    iso,
    order_line,
    order_record,
    plain_id,
)
from athos_identity.sales.records import OrderRecord
from athos_identity.sync.sources import SourcePage, Stream, TransientSourceError

log = logging.getLogger(__name__)

PAGE_SIZE = 250  # records of the first page of a bulk export (and of every orders page)
BULK_PAGE_MAX = 2000  # customers' pages double up to this
PREFETCH_PAGES = 2  # pages read ahead of the engine while it writes
CUSTOMERS_PER_QUERY = 240  # 2 + 240 x 4 = 962 points
ORDERS_PER_QUERY = 25  # 2 + 25 x (1 + 1 + 2 + 1 + (2 + 5 x 5)) = 802 points
LINES_PER_ORDER = 5
LINES_PER_QUERY = 100  # 1 + 2 + 100 x 5 = 503 points
MAX_OPERATIONS = 3
DOWNLOAD_RETRIES = 3
TOKEN_RECHECK_SECONDS = 300.0
EARLY_PAGES = 8  # customers pages read through the connection while an export runs
EARLY_PAGE_COST = 2 + CUSTOMERS_PER_QUERY * 4

EARLY_KEYS = ("cursor", "paged_to", "paged_done", "early_pages")  # kept across windows


def bulk_query(stream: Stream, window: windows.Window = windows.WHOLE) -> str:
    """The export of `stream`, restricted to changes inside `window`."""
    restrict = windows.argument(window)
    if stream is Stream.customers:
        return f"{{ customers{restrict} {{ edges {{ node {{ {CUSTOMER_FIELDS} }} }} }} }}"
    return (
        f"{{ orders{restrict} {{ edges {{ node {{ {ORDER_FIELDS} "
        f"lineItems {{ edges {{ node {{ {LINE_FIELDS} }} }} }} }} }} }} }}"
    )


BULK_QUERIES = {stream: bulk_query(stream) for stream in Stream}
EARLIEST = {
    stream: (
        f"query Earliest{stream.value.title()} {{ {stream.value}(first: 1, sortKey: UPDATED_AT)"
        " { nodes { updatedAt } } }"
    )
    for stream in Stream
}
CUSTOMERS_PAGE = f"""
query Customers($first: Int!, $after: String, $query: String) {{
  customers(first: $first, after: $after, sortKey: UPDATED_AT, query: $query) {{
    pageInfo {{ hasNextPage endCursor }}
    nodes {{ {CUSTOMER_FIELDS} }}
  }}
}}
"""
CUSTOMERS_BY_ID = f"""
query FirstCustomers($first: Int!, $after: String) {{
  customers(first: $first, after: $after, sortKey: ID) {{
    pageInfo {{ hasNextPage endCursor }}
    nodes {{ {CUSTOMER_FIELDS} }}
  }}
}}
"""
ORDERS_PAGE = f"""
query Orders($first: Int!, $after: String, $query: String, $lines: Int!) {{
  orders(first: $first, after: $after, sortKey: UPDATED_AT, query: $query) {{
    pageInfo {{ hasNextPage endCursor }}
    nodes {{
      {ORDER_FIELDS}
      lineItems(first: $lines) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ {LINE_FIELDS} }} }}
    }}
  }}
}}
"""
ORDER_LINES = f"""
query OrderLines($id: ID!, $first: Int!, $after: String) {{
  order(id: $id) {{
    lineItems(first: $first, after: $after) {{
      pageInfo {{ hasNextPage endCursor }} nodes {{ {LINE_FIELDS} }}
    }}
  }}
}}
"""


def search_since(since: datetime) -> str:
    moment = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"updated_at:>='{moment}'"


class ShopifyApi:
    """GraphQL with the connector's current token: re-read every few minutes (refreshed
    when near expiry), and once more on a 401 before the connector is declared rejected."""

    def __init__(self, tenant_id: uuid.UUID, connector_id: uuid.UUID) -> None:
        self.tenant_id = tenant_id
        self.connector_id = connector_id
        self.shop: str | None = None
        self._token: str | None = None
        self._client: ShopifyClient | None = None
        self._read_at = 0.0

    async def _read_token(self) -> str:
        async with db.tenant_transaction(self.tenant_id) as session:
            connector = await connectors.get_connector(
                session, self.tenant_id, self.connector_id, platform=Platform.shopify
            )
            token = await tokens.shopify_access_token(session, connector)
            self.shop = connector.store
        self._read_at = time.monotonic()
        return token

    async def _use(self, token: str) -> None:
        if token == self._token and self._client is not None:
            return
        if self._client is not None:
            await self._client.aclose()
        assert self.shop is not None
        self._token, self._client = token, ShopifyClient(self.shop, token)

    async def open(self) -> None:
        await self._use(await self._read_token())

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def can_afford(self, points: float) -> bool:
        """Whether the shop's cost bucket holds `points` now (as far as we know)."""
        return self._client is None or self._client.pacer.delay(points) <= 0

    async def query(self, gql: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        if self._client is None or time.monotonic() - self._read_at > TOKEN_RECHECK_SECONDS:
            await self._use(await self._read_token())
        assert self._client is not None
        try:
            return await self._client.query(gql, variables)
        except CredentialRejected as rejected:
            stale = self._token
            await self._use(await self._read_token())  # raises when the grant is dead
            if self._token == stale:
                await tokens.record_rejection(self.tenant_id, self.connector_id, rejected.detail)
                raise
        except ShopifyUnavailable as unavailable:
            raise TransientSourceError(unavailable.detail) from None
        except httpx.TransportError as error:
            raise TransientSourceError(type(error).__name__) from None
        try:
            return await self._client.query(gql, variables)
        except CredentialRejected as rejected:
            await tokens.record_rejection(self.tenant_id, self.connector_id, rejected.detail)
            raise
        except ShopifyUnavailable as unavailable:
            raise TransientSourceError(unavailable.detail) from None


class ShopifySource:
    def __init__(
        self,
        api: ShopifyApi,
        region: str | None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.api = api
        self.region = region
        self.bulk = BulkRunner(api.query)
        self._transport = transport  # for the result downloads (tests)

    async def pages(
        self, stream: Stream, *, since: datetime | None, position: Any
    ) -> AsyncIterator[SourcePage]:
        if since is None and (position is None or isinstance(position, dict)):
            pages = self._bulk_pages(stream, position)
        elif stream is Stream.customers:
            pages = self._customer_connection(since, position)
        else:
            pages = self._order_connection(since, position)
        async for page in pages:
            yield page

    # --- full sync: bulk operations ---------------------------------------------------------

    async def _bulk_pages(self, stream: Stream, position: Any) -> AsyncIterator[SourcePage]:
        """The stream's export, window by window (module docstring). `state["windows"]`
        are the windows still to do, the current one first; `state["done"]` counts those
        done; `bulk`, `lines`/`after` are the current window's operation and progress."""
        state: dict[str, Any] = dict(position or {})
        state.setdefault("windows", [list(windows.WHOLE)])
        started = 0  # operations started for the current window (a cut file runs it again)
        while True:
            window = list(state["windows"][0])
            if "bulk" not in state:
                if started >= MAX_OPERATIONS:
                    raise TransientSourceError(
                        f"Shopify bulk export of {stream.value} failed {started} times"
                    )
                operation = await self.bulk.start(bulk_query(stream, window))
                started += 1
                state["bulk"] = operation.id
                yield SourcePage(position=dict(state))  # checkpoint the operation id
            if stream is Stream.customers and "lines" not in state and window == windows.WHOLE:
                async for page in self._first_customers(state):
                    yield page
                    if page.position:
                        state.update(page.position)
            try:
                operation = await self.bulk.wait(state["bulk"])
            except BulkGone as gone:
                halves = await self._split(stream, window)
                if halves is None:
                    raise TransientSourceError(
                        f"Shopify bulk export of {stream.value} failed on a window of "
                        f"{window[0] or 'the start'} to {window[1] or 'now'} ({gone})"
                    ) from None
                log.warning(
                    "Shopify %s export: %s; again over %s to %s and %s to %s",
                    stream.value, gone, *halves[0], *halves[1],
                )  # fmt: skip
                state = _carried(state, windows=halves + state["windows"][1:])
                started = 0
                continue
            rest = state["windows"][1:]
            following = _carried(state, windows=rest, done=int(state.get("done") or 0) + 1)
            if not operation.url:  # nothing matched: Shopify gives no file
                if not rest:
                    total = 0 if window == windows.WHOLE else None
                    yield SourcePage(position=None, estimated_total=total)
                    return
                yield SourcePage(position=dict(following))
                state, started = following, 0
                continue
            try:
                async for page in self._download(stream, operation, state):
                    if page.position is None and rest:  # this window is done, not the stream
                        page = replace(page, position=dict(following))
                    yield page
            except UrlExpired:
                log.warning("Shopify %s export's file is gone; running it again", stream.value)
                state = _carried(state, windows=state["windows"])
                continue
            if not rest:
                return
            state, started = following, 0

    async def _split(self, stream: Stream, window: windows.Window) -> list[windows.Window] | None:
        earliest = None
        if window[0] is None:
            data = await self.api.query(EARLIEST[stream], None)
            nodes = (data.get(stream.value) or {}).get("nodes") or []
            earliest = iso(nodes[0].get("updatedAt")) if nodes else None
        return windows.split(window, earliest=earliest, now=shopify_client.utcnow())

    async def _first_customers(self, state: dict[str, Any]) -> AsyncIterator[SourcePage]:
        """While Shopify runs the export, the first customers by id through the connection,
        when the cost bucket can pay for them without waiting (at most `EARLY_PAGES`
        pages): they are findable seconds after the grant instead of after the export.
        The position remembers the last id read (`paged_to`); the export's rows up to it are
        skipped, so each customer is written once."""
        cursor = state.get("cursor")
        pages = int(state.get("early_pages") or 0)
        interval = POLL_FIRST_SECONDS
        while pages < EARLY_PAGES and not state.get("paged_done"):
            operation = await self.bulk.fetch(state["bulk"])
            if operation is None or operation.status not in RUNNING:
                return
            if not self.api.can_afford(EARLY_PAGE_COST):
                await asyncio.sleep(interval)
                interval = min(POLL_MAX_SECONDS, interval * 1.5)
                continue
            data = await self.api.query(
                CUSTOMERS_BY_ID, {"first": CUSTOMERS_PER_QUERY, "after": cursor}
            )
            connection = data.get("customers") or {}
            nodes = connection.get("nodes") or []
            info = connection.get("pageInfo") or {}
            cursor = info.get("endCursor") if info.get("hasNextPage") else None
            ids = [int(i) for i in (plain_id(n.get("id")) for n in nodes) if i and i.isdigit()]
            pages += 1
            position = {
                **state,
                "cursor": cursor,
                "paged_to": max(ids, default=state.get("paged_to")),
                "paged_done": cursor is None,
                "early_pages": pages,
            }
            updated = [d for d in (iso(n.get("updatedAt")) for n in nodes) if d]
            yield SourcePage(
                position=position,
                customers=[customer_record(n, self.region) for n in nodes],
                high_water=max(updated, default=None),
            )
            if cursor is None:
                return

    async def _download(
        self, stream: Stream, operation: Operation, state: dict[str, Any]
    ) -> AsyncIterator[SourcePage]:
        """The export's pages; `state` follows what the engine has committed (a page is
        committed when the engine asks for the next one), so a cut download starts again
        after it."""
        for attempt in range(DOWNLOAD_RETRIES + 1):
            rows = self._customer_rows if stream is Stream.customers else self._order_rows
            try:
                async for page in _prefetched(rows(operation, dict(state)), PREFETCH_PAGES):
                    yield page
                    if page.position:
                        state.update(page.position)
                return
            except (Truncated, httpx.TransportError) as error:
                # The type only: httpx messages may quote the signed download URL.
                reason = type(error).__name__
                if attempt >= DOWNLOAD_RETRIES:
                    raise TransientSourceError(
                        f"Shopify export download failed: {reason}"
                    ) from None
                log.info("Shopify export download cut (%s); again", reason)
                await asyncio.sleep(backoff_seconds(attempt))

    async def _customer_rows(
        self, operation: Operation, state: dict[str, Any]
    ) -> AsyncIterator[SourcePage]:
        """Pages as the file downloads; `state["lines"]` = rows committed (skipped here).
        The first page is small (the first customers are findable at once), then pages
        grow to `BULK_PAGE_MAX` (fewer transactions)."""
        committed = int(state.get("lines") or 0)
        paged_to = state.get("paged_to")  # read through the connection already
        seen = 0
        size = PAGE_SIZE
        records = []
        updated: list[datetime] = []
        async for row in jsonl_rows(operation.url or "", transport=self._transport):
            seen += 1
            if seen <= committed:
                continue
            if paged_to is not None and _numeric_id(row.get("id")) <= paged_to:
                continue
            records.append(customer_record(row, self.region))
            if (moment := iso(row.get("updatedAt"))) is not None:
                updated.append(moment)
            if len(records) >= size:  # (`lines` counts rows read, skipped ones too)
                yield SourcePage(
                    position={**state, "lines": seen},
                    customers=records,
                    high_water=max(updated, default=None),
                    estimated_total=operation.root_object_count or None,
                )
                records, updated = [], []
                size = min(BULK_PAGE_MAX, size * 2)
        if seen < operation.object_count:
            raise Truncated(f"{seen} of {operation.object_count} rows")
        yield SourcePage(
            position=None,
            customers=records,
            high_water=max(updated, default=None),
            estimated_total=operation.root_object_count or None,
        )

    async def _order_rows(
        self, operation: Operation, state: dict[str, Any]
    ) -> AsyncIterator[SourcePage]:
        """The whole file into the spill, then orders in id order; `state["after"]` = the
        last order committed (it and earlier ones are skipped)."""
        after = state.get("after")
        seen = 0
        with OrderSpill() as spill:
            async for row in jsonl_rows(operation.url or "", transport=self._transport):
                seen += 1
                spill.add(row, after)
            if seen < operation.object_count:
                raise Truncated(f"{seen} of {operation.object_count} rows")
            for batch in spill.pages(PAGE_SIZE):
                orders = [
                    order_record(node, tuple(order_line(x) for x in lines), self.region)
                    for node, lines in batch
                ]
                position = {**state, "after": int(orders[-1].order_id)}
                yield _order_page(position, orders, operation.root_object_count)
        yield SourcePage(position=None)

    # --- incremental sync: paged connections ------------------------------------------------

    async def _customer_connection(
        self, since: datetime | None, cursor: Any
    ) -> AsyncIterator[SourcePage]:
        search = search_since(since) if since else None
        after = cursor if isinstance(cursor, str) else None
        while True:
            data = await self.api.query(
                CUSTOMERS_PAGE, {"first": CUSTOMERS_PER_QUERY, "after": after, "query": search}
            )
            connection = data.get("customers") or {}
            nodes = connection.get("nodes") or []
            info = connection.get("pageInfo") or {}
            after = info.get("endCursor") if info.get("hasNextPage") else None
            updated = [d for d in (iso(n.get("updatedAt")) for n in nodes) if d]
            yield SourcePage(
                position=after,
                customers=[customer_record(n, self.region) for n in nodes],
                high_water=max(updated, default=None),
            )
            if after is None:
                return

    async def _order_connection(
        self, since: datetime | None, cursor: Any
    ) -> AsyncIterator[SourcePage]:
        search = search_since(since) if since else None
        after = cursor if isinstance(cursor, str) else None
        while True:
            data = await self.api.query(
                ORDERS_PAGE,
                {
                    "first": ORDERS_PER_QUERY,
                    "after": after,
                    "query": search,
                    "lines": LINES_PER_ORDER,
                },
            )
            connection = data.get("orders") or {}
            info = connection.get("pageInfo") or {}
            after = info.get("endCursor") if info.get("hasNextPage") else None
            orders = [await self._order_with_lines(node) for node in connection.get("nodes") or []]
            yield _order_page(after, orders, None)
            if after is None:
                return

    async def _order_with_lines(self, node: dict[str, Any]) -> OrderRecord:
        items = node.get("lineItems") or {}
        lines = list(items.get("nodes") or [])
        info = items.get("pageInfo") or {}
        while info.get("hasNextPage"):
            data = await self.api.query(
                ORDER_LINES,
                {"id": node["id"], "first": LINES_PER_QUERY, "after": info.get("endCursor")},
            )
            items = (data.get("order") or {}).get("lineItems") or {}
            lines += items.get("nodes") or []
            info = items.get("pageInfo") or {}
        return order_record(node, tuple(order_line(x) for x in lines), self.region)


def _carried(state: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A new window's state: what the early pages read is kept, the operation is not."""
    kept = {key: state[key] for key in EARLY_KEYS if key in state}
    return {**kept, "windows": state["windows"], "done": state.get("done") or 0, **changes}


def _numeric_id(gid: Any) -> int:
    value = plain_id(gid)
    return int(value) if value and value.isdigit() else -1


_END = object()


async def _prefetched(pages: AsyncIterator[SourcePage], depth: int) -> AsyncIterator[SourcePage]:
    """`pages`, read ahead by a task of its own: the download and parsing go on while the
    engine writes the previous page. The task's errors come out here, in order."""
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=depth)

    async def produce() -> None:
        try:
            async for page in pages:
                await queue.put(page)
        except Exception as error:  # handed to the consumer, raised there
            await queue.put(error)
        else:
            await queue.put(_END)

    task = asyncio.create_task(produce())
    try:
        while (item := await queue.get()) is not _END:
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        aclose = getattr(pages, "aclose", None)
        if aclose is not None:
            await aclose()


def _order_page(position: Any, orders: list[OrderRecord], total: int | None) -> SourcePage:
    updated = [o.updated_at for o in orders if o.updated_at]
    return SourcePage(
        position=position,
        orders=orders,
        high_water=max(updated, default=None),
        estimated_total=total or None,
    )


@asynccontextmanager
async def open_shopify_source(
    tenant_id: uuid.UUID, connector_id: uuid.UUID, region: str | None
) -> AsyncIterator[ShopifySource]:
    api = ShopifyApi(tenant_id, connector_id)
    await api.open()
    try:
        yield ShopifySource(api, region)
    finally:
        await api.aclose()
