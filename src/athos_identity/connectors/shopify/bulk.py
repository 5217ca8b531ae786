"""Shopify bulk operations: start (or adopt) one, poll it, stream its JSONL, join children.

Lifecycle. `bulkOperationRunQuery` starts an export; Shopify runs one bulk query per app and
shop at a time. When one is already in progress (`OPERATION_IN_PROGRESS`), the current one is
adopted if it runs exactly our query (a run of ours that died before it could checkpoint the
id); another one is waited for, and cancelled if it makes no progress. `bulkOperation(id)`
is polled with a growing interval (0.2 s up to `POLL_MAX_SECONDS`). An operation whose
`objectCount` has not moved for `STALL_SECONDS` while RUNNING is stuck: it is cancelled and
`BulkGone` raised, as for FAILED, CANCELED and EXPIRED: the caller starts a new one.

Results. `url` is streamed with httpx, line by line; nothing holds the whole file. The
number of lines read is checked against the operation's `objectCount`, so a body cut at a
line boundary is not taken for the end of the export (`Truncated`).

Children. Rows of a nested connection (line items) carry `__parentId` and may come before
or after their parent, interleaved arbitrarily. No line tells that an order has all its
children until the file ends: a later parent line proves nothing about earlier parents
(Shopify may still emit their children), so flushing orders "once another parent shows up"
would store orders with missing lines. So orders are complete only at the end of the file.
To keep memory bounded (100k orders x up to hundreds of lines), every row goes to an
`OrderSpill`: a SQLite file in a private temporary directory, written in batches, indexed
by parent id. Order rows carry the buyer's e-mail and phone: they are written encrypted with
AES-GCM under a random key that lives only in this process's memory (DESIGN.md §2.1: no raw
identifier durable anywhere; the file is unreadable once the process is gone, and it is
deleted on close anyway). At the end of the file, orders come back in id order with their
lines, page by page.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from athos_identity.connectors.shopify.client import PermissionMissing, ShopifyError
from athos_identity.connectors.shopify.mapping import plain_id

log = logging.getLogger(__name__)

Query = Callable[[str, dict[str, Any] | None], Awaitable[dict[str, Any]]]
Sleep = Callable[[float], Awaitable[None]]

POLL_FIRST_SECONDS = 0.2
POLL_MAX_SECONDS = 3.0
STALL_SECONDS = 15 * 60.0  # RUNNING without a new object for this long: stuck
DOWNLOAD_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
SPILL_BATCH = 2000

RUN_QUERY = """
mutation RunBulk($query: String!) {
  bulkOperationRunQuery(query: $query) {
    bulkOperation { id status }
    userErrors { field message code }
  }
}
"""
OPERATION_FIELDS = "id status errorCode objectCount rootObjectCount url query"
POLL_QUERY = f"query Bulk($id: ID!) {{ bulkOperation(id: $id) {{ {OPERATION_FIELDS} }} }}"
CURRENT_QUERY = f"query CurrentBulk {{ currentBulkOperation {{ {OPERATION_FIELDS} }} }}"
CANCEL_QUERY = """
mutation CancelBulk($id: ID!) {
  bulkOperationCancel(id: $id) { bulkOperation { id status } userErrors { field message } }
}
"""

RUNNING = ("CREATED", "RUNNING", "CANCELING")
GONE = ("FAILED", "CANCELED", "EXPIRED")


class BulkGone(Exception):
    """The operation will never give (all) its results: start a new one."""


class Truncated(Exception):
    """The JSONL ended early (cut body, dropped connection): download again."""


class UrlExpired(Exception):
    """The result file's signed URL no longer answers: the operation must be run again."""


@dataclass
class Operation:
    id: str
    status: str
    error_code: str | None = None
    object_count: int = 0
    root_object_count: int = 0
    url: str | None = None
    query: str | None = None

    @classmethod
    def from_node(cls, node: dict[str, Any]) -> Operation:
        def count(value: Any) -> int:
            try:
                return int(value or 0)
            except (TypeError, ValueError):
                return 0

        return cls(
            id=str(node["id"]),
            status=str(node.get("status") or ""),
            error_code=node.get("errorCode"),
            object_count=count(node.get("objectCount")),
            root_object_count=count(node.get("rootObjectCount")),
            url=node.get("url"),
            query=node.get("query"),
        )


def _same_query(a: str | None, b: str) -> bool:
    return a is not None and " ".join(a.split()) == " ".join(b.split())


class BulkRunner:
    def __init__(self, query: Query, sleep: Sleep = asyncio.sleep) -> None:
        self._query = query
        self._sleep = sleep

    async def start(self, bulk_query: str) -> Operation:
        """A new export of `bulk_query`, or the one already running it."""
        while True:
            data = await self._query(RUN_QUERY, {"query": bulk_query})
            payload = data.get("bulkOperationRunQuery") or {}
            errors = payload.get("userErrors") or []
            started = payload.get("bulkOperation")
            if started and not errors:
                log.info("Shopify bulk operation %s started", started["id"])
                return Operation.from_node(started)
            codes = {str(e.get("code") or "") for e in errors}
            messages = " ".join(str(e.get("message") or "") for e in errors)
            if "OPERATION_IN_PROGRESS" not in codes and "already in progress" not in messages:
                raise ShopifyError(f"Shopify refused the bulk query: {messages[:300]}")
            current = await self.current()
            if current is None or current.status not in RUNNING:
                continue  # it just ended: try again
            if _same_query(current.query, bulk_query):
                log.info("Shopify bulk operation %s adopted (same query)", current.id)
                return current
            log.info("another Shopify bulk operation %s is running; waiting", current.id)
            with contextlib.suppress(BulkGone):
                await self.wait(current.id)

    async def current(self) -> Operation | None:
        node = (await self._query(CURRENT_QUERY, None)).get("currentBulkOperation")
        return Operation.from_node(node) if node else None

    async def fetch(self, operation_id: str) -> Operation | None:
        node = (await self._query(POLL_QUERY, {"id": operation_id})).get("bulkOperation")
        return Operation.from_node(node) if node else None

    async def cancel(self, operation_id: str) -> None:
        await self._query(CANCEL_QUERY, {"id": operation_id})

    async def wait(self, operation_id: str) -> Operation:
        """Poll until COMPLETED; `BulkGone` when it failed, expired, was cancelled or stalled."""
        interval = POLL_FIRST_SECONDS
        last_count, last_change = -1, time.monotonic()
        while True:
            operation = await self.fetch(operation_id)
            if operation is None:
                raise BulkGone(f"bulk operation {operation_id} is unknown")
            if operation.status == "COMPLETED":
                return operation
            if operation.status == "FAILED" and operation.error_code == "ACCESS_DENIED":
                raise PermissionMissing(
                    "The Shopify grant lacks a scope this export needs (ACCESS_DENIED).",
                    platform_status=200,
                )
            if operation.status in GONE:
                raise BulkGone(
                    f"bulk operation {operation_id} {operation.status} ({operation.error_code})"
                )
            now = time.monotonic()
            if operation.object_count != last_count:
                last_count, last_change = operation.object_count, now
            elif now - last_change > STALL_SECONDS:
                log.warning("Shopify bulk operation %s stalled; cancelling it", operation_id)
                await self.cancel(operation_id)
                raise BulkGone(f"bulk operation {operation_id} stalled")
            await self._sleep(interval)
            interval = min(POLL_MAX_SECONDS, interval * 1.5)


async def jsonl_rows(
    url: str, *, transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[dict[str, Any]]:
    """Every row of the result file, parsed, as it downloads. Raises `Truncated` on a cut
    line, httpx errors on a dropped connection, `UrlExpired` on 403/404/410."""
    async with (
        httpx.AsyncClient(timeout=DOWNLOAD_TIMEOUT, transport=transport) as http,
        http.stream("GET", url) as response,
    ):
        if response.status_code in (403, 404, 410):
            raise UrlExpired(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise Truncated(f"HTTP {response.status_code}")
        async for line in response.aiter_lines():
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise Truncated("a line of the export is not JSON") from None
            if not isinstance(row, dict) or ("id" not in row and "__parentId" not in row):
                raise Truncated("a line of the export is not an object")
            yield row


# --- orders: spill to disk until the file ends ---------------------------------------------


class OrderSpill:
    """Orders and their lines from a bulk export, kept on disk until the file is complete."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="athos-shopify-bulk-")
        path = os.path.join(self._dir.name, "orders.sqlite")
        self._db = sqlite3.connect(path)
        self._db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA temp_store=FILE;"
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, nonce BLOB, body BLOB);"
            "CREATE TABLE lines (parent INTEGER, body TEXT);"
        )
        self._cipher = AESGCM(AESGCM.generate_key(bit_length=128))
        self._counter = 0
        self._orders: list[tuple[int, bytes, bytes]] = []
        self._lines: list[tuple[int, str]] = []
        self.order_count = 0
        self.line_count = 0

    def __enter__(self) -> OrderSpill:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._orders.clear()
        self._lines.clear()
        self._db.close()
        self._dir.cleanup()

    def add(self, row: dict[str, Any], after: int | None) -> None:
        """One JSONL row: an order (no `__parentId`) or a line of one. Orders at or before
        `after` were committed by an earlier attempt and are skipped with their lines."""
        parent = row.get("__parentId")
        key = _numeric(plain_id(parent if parent is not None else row.get("id")))
        if key is None or (after is not None and key <= after):
            return
        if parent is None:
            self._counter += 1
            nonce = self._counter.to_bytes(12, "big")
            body = self._cipher.encrypt(nonce, json.dumps(row).encode(), None)
            self._orders.append((key, nonce, body))
            self.order_count += 1
        else:
            self._lines.append((key, json.dumps(row)))
            self.line_count += 1
        if len(self._orders) + len(self._lines) >= SPILL_BATCH:
            self.flush()

    def flush(self) -> None:
        if self._orders:
            # INSERT OR REPLACE: a duplicated row (never expected) keeps one order
            self._db.executemany("INSERT OR REPLACE INTO orders VALUES (?, ?, ?)", self._orders)
            self._orders.clear()
        if self._lines:
            self._db.executemany("INSERT INTO lines VALUES (?, ?)", self._lines)
            self._lines.clear()

    def pages(self, size: int) -> Iterator[list[tuple[dict[str, Any], list[dict[str, Any]]]]]:
        """Orders in id order with their lines, `size` at a time; lines whose order never
        came are dropped (and logged)."""
        self.flush()
        self._db.execute("CREATE INDEX lines_parent ON lines (parent)")
        last = -1
        while True:
            rows = self._db.execute(
                "SELECT id, nonce, body FROM orders WHERE id > ? ORDER BY id LIMIT ?", (last, size)
            ).fetchall()
            if not rows:
                break
            last = rows[-1][0]
            first = rows[0][0]
            children: dict[int, list[dict[str, Any]]] = {}
            for parent, body in self._db.execute(
                "SELECT parent, body FROM lines WHERE parent BETWEEN ? AND ? ORDER BY rowid",
                (first, last),
            ):
                children.setdefault(parent, []).append(json.loads(body))
            yield [
                (json.loads(self._cipher.decrypt(nonce, body, None)), children.get(key, []))
                for key, nonce, body in rows
            ]
        orphans = self._db.execute(
            "SELECT count(*) FROM lines WHERE parent NOT IN (SELECT id FROM orders)"
        ).fetchone()[0]
        if orphans:
            log.warning("Shopify bulk export: %d line items without their order dropped", orphans)


def _numeric(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None
