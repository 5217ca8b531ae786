"""The platform-neutral pull loop (DESIGN.md §5).

For each stream: ask the source for the next page after the checkpoint, hash it, and in ONE
transaction write the records, advance the checkpoint and the run's counters. A process
killed at any moment leaves the last committed page as the resume point, and every write
is an idempotent upsert, so nothing is lost or duplicated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import psycopg
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from athos_identity import observability
from athos_identity.connectors import service as connectors
from athos_identity.db import as_libpq_url, database_url, tenant_transaction
from athos_identity.identity import repository as identity
from athos_identity.identity.records import hash_customer
from athos_identity.identity.service import hasher_for
from athos_identity.sales import repository as sales
from athos_identity.sales.records import hash_order
from athos_identity.sync import repository
from athos_identity.sync.models import SyncRun
from athos_identity.sync.sources import (
    Source,
    SourcePage,
    Stream,
    TransientSourceError,
    open_source,
)
from athos_identity.tenants.repository import get_tenant

log = logging.getLogger(__name__)

# Incremental pulls start this much before the last high-water mark: platforms index
# updates with some lag, and re-reading a few records is harmless (upserts).
OVERLAP = timedelta(minutes=5)
STREAMS = (Stream.customers, Stream.orders)
# Pages fetched while the previous one is being hashed and written: the platform (or the
# sandbox) works while we do. A crash loses only uncommitted pages, fetched again.
PAGES_AHEAD = 2

T = TypeVar("T")


async def read_ahead(source: AsyncIterator[T], depth: int) -> AsyncIterator[T]:
    """Iterate `source` in a background task, at most `depth` items ahead of the consumer.

    Errors of the source surface at the item where they happened; leaving the loop early
    cancels the background task and closes the source."""
    queue: asyncio.Queue[tuple[bool, Any]] = asyncio.Queue(maxsize=depth)

    async def produce() -> None:
        try:
            async for item in source:
                await queue.put((True, item))
            await queue.put((False, None))
        except Exception as exc:  # handed over to the consumer, raised there
            await queue.put((False, exc))

    task = asyncio.create_task(produce())
    try:
        while True:
            more, item = await queue.get()
            if not more:
                if item is not None:
                    raise item
                return
            yield item
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()


class RunGone(Exception):
    """The run is no longer in the database: purged with its connector's data."""


class RunCancelled(Exception):
    """The run was cancelled while it ran; the pages already written stay."""


class RunBusy(TransientSourceError):
    """Another process is pulling this run (a job retried while its first worker still
    lives): this one backs off and tries later."""


@dataclass
class PullGuard:
    """What is checked before each page is written: the job was not asked to abort, and
    this process still holds the run's advisory lock."""

    lock_connection: psycopg.AsyncConnection[Any]
    should_abort: Callable[[], bool] = lambda: False

    async def check(self, run_id: uuid.UUID) -> None:
        if self.should_abort():
            raise RunCancelled(str(run_id))
        # The lock lives as long as its connection: if the database dropped it (restart,
        # pg_terminate_backend), another worker may take the run, so this one stops here
        # (psycopg.OperationalError: transient, retried from the checkpoint).
        await self.lock_connection.execute("SELECT 1")


@asynccontextmanager
async def exclusive_pull(run_id: uuid.UUID) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """Hold a session-level advisory lock for the whole pull; yields its connection.

    procrastinate's per-connector lock keeps two *jobs* apart, but a job retried as stalled
    while its worker still runs would be pulled twice; this lock lives on a connection of
    its own, so it is released the moment its process dies."""
    conninfo = as_libpq_url(database_url())
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as connection:
        cursor = await connection.execute(
            "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (f"pull:{run_id}",)
        )
        row = await cursor.fetchone()
        if not (row and row[0]):
            raise RunBusy(f"run {run_id} is being pulled by another worker")
        yield connection


async def run_pull(
    tenant_id: uuid.UUID, run_id: uuid.UUID, should_abort: Callable[[], bool] = lambda: False
) -> str:
    """Run (or resume) a sync run to its end; returns its final status."""
    async with exclusive_pull(run_id) as lock_connection:
        guard = PullGuard(lock_connection, should_abort)
        started = await _start(tenant_id, run_id)
        if started is None:
            return "finished"
        run, platform, region = started
        observability.bind(tenant_id=tenant_id, run_id=run_id, connector_id=run.connector_id)
        log.info("sync run starts", extra={"tenant_id": tenant_id, "run_id": run_id})
        async with open_source(tenant_id, run.connector_id, platform, region) as source:
            for stream in STREAMS:
                state = dict(run.checkpoint.get(stream.value) or {})
                if state.get("done"):
                    continue
                since = await _since(tenant_id, run, stream)
                with observability.sync_stream(platform, stream.value):  # metrics, log context
                    await _pull_stream(tenant_id, run, stream, state, source, since, guard)
        await _finish(tenant_id, run_id)
        return "succeeded"


async def _start(tenant_id: uuid.UUID, run_id: uuid.UUID) -> tuple[SyncRun, str, str | None] | None:
    """Mark the run running (counting the attempt); None when it has already ended."""
    async with tenant_transaction(tenant_id) as session:
        run = await repository.get_run(session, tenant_id, run_id, for_update=True)
        if run is None:
            raise RunGone(str(run_id))
        if run.status not in ("queued", "running"):
            return None
        connector = await connectors.get_connector(session, tenant_id, run.connector_id)
        connectors.require_usable(connector)
        tenant = await get_tenant(session, tenant_id)
        region = connector.store_country or (tenant.default_region if tenant else None)
        await repository.update_run(
            session,
            tenant_id,
            run_id,
            status="running",
            add_attempts=1,
            # The database's clock, as for the rows' updated_at: full-sync sweeps compare them.
            started_at=func.coalesce(SyncRun.started_at, func.now()),
        )
        session.expunge(run)
        return run, connector.platform, region


async def _since(tenant_id: uuid.UUID, run: SyncRun, stream: Stream) -> datetime | None:
    if run.mode == "full":
        return None
    async with tenant_transaction(tenant_id) as session:
        high_water = await repository.get_cursor(session, tenant_id, run.connector_id, stream)
    return high_water - OVERLAP if high_water else None


async def _pull_stream(
    tenant_id: uuid.UUID,
    run: SyncRun,
    stream: Stream,
    state: dict[str, Any],
    source: Source,
    since: datetime | None,
    guard: PullGuard,
) -> None:
    pages = source.pages(stream, since=since, position=state.get("position"))
    async for page in read_ahead(pages, PAGES_AHEAD):
        await guard.check(run.id)
        async with tenant_transaction(tenant_id) as session:
            current = await repository.get_run(session, tenant_id, run.id, for_update=True)
            if current is None or current.status != "running":
                raise RunCancelled(str(run.id))
            written = await _write_page(session, tenant_id, run, stream, page)
            state["position"] = page.position
            state["done"] = page.position is None
            if page.high_water:
                previous = state.get("high_water")
                state["high_water"] = max(previous or "", page.high_water.isoformat())
            if page.estimated_total is not None:
                state["total"] = max(state.get("total") or 0, page.estimated_total)
            if state["done"] and run.mode == "full":
                written["deleted"] = await _sweep(session, tenant_id, run, stream, source)
            checkpoint = {**current.checkpoint, stream.value: state}
            customers = current.customers + written.get("customers", 0)
            orders = current.orders + written.get("orders", 0)
            await repository.update_run(
                session,
                tenant_id,
                run.id,
                checkpoint=checkpoint,
                stream=stream.value,
                add_pages=1,
                add_customers=written.get("customers", 0),
                add_orders=written.get("orders", 0),
                add_skipped=written.get("skipped", 0),
                add_deleted=written.get("deleted", 0),
                estimated_total=_estimate(checkpoint, stream, customers, orders),
                last_error=None,
            )
        run.checkpoint = checkpoint
        observability.sync_page(written)
        if state["done"]:
            return
    # A source that ends without a final position-less page: the stream is complete.
    async with tenant_transaction(tenant_id) as session:
        deleted = await _sweep(session, tenant_id, run, stream, source) if run.mode == "full" else 0
        state["done"] = True
        run.checkpoint = {**run.checkpoint, stream.value: state}
        current = await repository.get_run(session, tenant_id, run.id)
        estimate = None
        if current is not None:
            estimate = _estimate(run.checkpoint, stream, current.customers, current.orders)
        await repository.update_run(
            session,
            tenant_id,
            run.id,
            checkpoint=run.checkpoint,
            add_deleted=deleted,
            estimated_total=estimate,
        )


def _estimate(
    checkpoint: dict[str, Any], current: Stream, customers: int, orders: int
) -> int | None:
    """Records the run is expected to hold once the stream in progress ends: the streams
    already pulled as written, plus the one in progress by its platform's total. None
    while that total is unknown (BigCommerce's V2 orders say none): better no estimate
    than one the run has already passed (an ETA of 0 and a full bar, with a stream to go).
    Streams not started yet are not counted: their size is not known before they start."""
    estimate = 0
    for stream in STREAMS:
        state = checkpoint.get(stream.value) or {}
        written = customers if stream is Stream.customers else orders
        if state.get("done"):
            estimate += written
        elif stream is current:
            if state.get("total") is None:
                return None
            estimate += max(int(state["total"]), written)
    return estimate


async def _write_page(
    session: AsyncSession, tenant_id: uuid.UUID, run: SyncRun, stream: Stream, page: SourcePage
) -> dict[str, int]:
    hasher = hasher_for(tenant_id)
    seen_in = run.id if run.mode == "full" else None
    deleted = 0
    if page.deleted_ids:
        if stream is Stream.customers:
            deleted = await identity.delete_customers(
                session, tenant_id, run.connector_id, page.deleted_ids
            )
        else:
            deleted = await sales.delete_orders(
                session, tenant_id, run.connector_id, page.deleted_ids
            )
    if stream is Stream.customers:
        hashed = [hash_customer(record, hasher) for record in page.customers]
        await identity.replace_customer_links(session, tenant_id, run.connector_id, hashed)
        await identity.mark_customers_seen(
            session, tenant_id, run.connector_id, [c.customer_id for c in hashed], seen_in
        )
        skipped = sum(len(c.rejected) for c in hashed)
        return {"customers": len(hashed), "skipped": skipped, "deleted": deleted}
    orders = [hash_order(record, hasher) for record in page.orders]
    await sales.upsert_orders(session, tenant_id, run.connector_id, orders, seen_in)
    return {"orders": len(orders), "skipped": sum(o.skipped for o in orders), "deleted": deleted}


async def _sweep(
    session: AsyncSession, tenant_id: uuid.UUID, run: SyncRun, stream: Stream, source: Source
) -> int:
    """After a full pass: what the platform no longer has is removed here too — but only
    within what the source can see (Shopify shows 60 days of orders without
    read_all_orders: older orders are out of sight, not deleted)."""
    # Rows written since the run started and not by it came from webhooks (a customer
    # created during the export): they are not gone, whatever the export says.
    started = await repository.get_run(session, tenant_id, run.id)
    started_at = started.started_at if started and started.started_at else datetime.now(UTC)
    if stream is Stream.customers:
        return await identity.sweep_customers(
            session, tenant_id, run.connector_id, run.id, written_before=started_at
        )
    visible_since = getattr(source, "orders_visible_since", None)
    return await sales.sweep_orders(
        session,
        tenant_id,
        run.connector_id,
        run.id,
        placed_since=visible_since,
        written_before=started_at,
    )


async def _finish(tenant_id: uuid.UUID, run_id: uuid.UUID) -> None:
    async with tenant_transaction(tenant_id) as session:
        run = await repository.get_run(session, tenant_id, run_id, for_update=True)
        if run is None or run.status != "running":
            return
        for stream in STREAMS:
            high_water = (run.checkpoint.get(stream.value) or {}).get("high_water")
            if high_water:
                await repository.advance_cursor(
                    session, tenant_id, run.connector_id, stream, datetime.fromisoformat(high_water)
                )
        await repository.update_run(
            session,
            tenant_id,
            run_id,
            status="succeeded",
            finished_at=datetime.now(UTC),
            stream=None,
        )


async def fail_run(tenant_id: uuid.UUID, run_id: uuid.UUID, reason: str) -> None:
    """Mark a run failed with a reason that is safe to show (no identifiers, no tokens)."""
    async with tenant_transaction(tenant_id) as session:
        await repository.update_run(
            session,
            tenant_id,
            run_id,
            status="failed",
            last_error=reason[:500],
            finished_at=datetime.now(UTC),
        )


async def note_error(tenant_id: uuid.UUID, run_id: uuid.UUID, reason: str) -> None:
    """Record a transient error on a run that will be retried."""
    async with tenant_transaction(tenant_id) as session:
        await repository.update_run(session, tenant_id, run_id, last_error=reason[:500])
