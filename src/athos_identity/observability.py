"""Structured JSON logs, request context and Prometheus metrics.

Log records carry ids and counts, never e-mails, phones or tokens. The ids of the work in
hand (request, tenant, API key, connector, sync run) live in context variables: the HTTP
middleware sets the request id, the authentication dependency the tenant and key, the sync
engine the connector and run; every log line written meanwhile carries them.

Metrics are process-local `prometheus_client` objects; with several API processes on one
host set PROMETHEUS_MULTIPROC_DIR (docs/operators.md, "Metrics").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

# --- context ------------------------------------------------------------------------------

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
tenant_id_var: ContextVar[Any] = ContextVar("tenant_id", default=None)
key_id_var: ContextVar[Any] = ContextVar("key_id", default=None)
connector_id_var: ContextVar[Any] = ContextVar("connector_id", default=None)
run_id_var: ContextVar[Any] = ContextVar("run_id", default=None)
platform_var: ContextVar[str | None] = ContextVar("platform", default=None)
stream_var: ContextVar[str | None] = ContextVar("stream", default=None)

_CONTEXT: dict[str, ContextVar[Any]] = {
    "request_id": request_id_var,
    "tenant_id": tenant_id_var,
    "key_id": key_id_var,
    "connector_id": connector_id_var,
    "run_id": run_id_var,
}
_VARS: dict[str, ContextVar[Any]] = {**_CONTEXT, "platform": platform_var, "stream": stream_var}


def bind(**values: Any) -> None:
    """Set context ids for the rest of the current task (a request, a job)."""
    for name, value in values.items():
        _VARS[name].set(value)


@contextlib.contextmanager
def bound(**values: Any) -> Iterator[None]:
    """Context ids for the duration of a block."""
    tokens = [(_VARS[name], _VARS[name].set(value)) for name, value in values.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def current_key_id() -> uuid.UUID | None:
    return key_id_var.get()


# --- logs ---------------------------------------------------------------------------------

# Libraries that narrate every step at INFO (httpx logs each URL it calls).
_CHATTY_LIBRARIES = ("pgserver", "alembic", "httpx", "procrastinate")
_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime"}
)
# Extra fields an access line or a caller may add: names only from this list are emitted,
# so an `extra=` that happens to carry a payload never reaches the log.
_EXTRA_FIELDS = ("method", "route", "status", "duration_ms", "platform", "stream")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for field, var in _CONTEXT.items():
            value = getattr(record, field, None)
            if value is None:
                value = var.get()
            if value is not None:
                entry[field] = str(value)
        for field in _EXTRA_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info and record.exc_info[0] is not None:
            # Type only: an exception's message may quote data it was handed.
            entry["exc_type"] = record.exc_info[0].__name__
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str = "INFO", *, json_output: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_output:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    if root.level > logging.DEBUG:
        for name in _CHATTY_LIBRARIES:
            logging.getLogger(name).setLevel(max(root.level, logging.WARNING))


def uvicorn_log_config(level: str = "INFO") -> dict[str, Any]:
    """The same JSON logging for uvicorn and for each of its worker processes (which start
    afresh: `--workers N` spawns them). uvicorn's own access log is off: its lines carry
    raw query strings (an OAuth callback's code and state); our middleware logs route
    templates instead."""
    quiet = {name: {"level": "WARNING"} for name in _CHATTY_LIBRARIES}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {**quiet, "uvicorn.access": {"level": "WARNING", "propagate": False}},
    }


# --- metrics ------------------------------------------------------------------------------

_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

HTTP_REQUEST_SECONDS = Histogram(
    "athos_http_request_duration_seconds",
    "Time from the request's first byte to its response's last, by route template.",
    ["method", "route", "status_class"],
    buckets=_LATENCY_BUCKETS,
)
LOOKUP_IDENTIFIERS = Counter(
    "athos_lookup_identifiers", "Identifiers looked up (every item of every look-up batch)."
)
LOOKUP_MATCHED = Counter(
    "athos_lookup_matched_identifiers", "Identifiers looked up that matched a customer."
)
SYNC_PAGES = Counter(
    "athos_sync_pages", "Pages pulled and committed by sync runs.", ["platform", "stream"]
)
SYNC_RECORDS = Counter(
    "athos_sync_records",
    "Records written by sync runs (customers or orders).",
    ["platform", "stream"],
)
SYNC_SKIPPED = Counter(
    "athos_sync_skipped_identifiers",
    "Identifiers a pull could not normalize (skipped, never stored).",
    ["platform", "stream"],
)
SYNC_ERRORS = Counter(
    "athos_sync_errors",
    "Pulls of a stream that stopped on an error (retried or failed).",
    ["platform", "stream", "error"],
)
PLATFORM_WAITS = Counter(
    "athos_platform_throttle_waits",
    "Waits before calling a platform: pacing from its quota headers, its 429s, THROTTLED.",
    ["platform", "reason"],
)
PLATFORM_WAIT_SECONDS = Counter(
    "athos_platform_throttle_wait_seconds",
    "Seconds spent waiting on platform rate limits.",
    ["platform", "reason"],
)
RATE_LIMITED = Counter(
    "athos_rate_limited_requests", "Requests refused with 429 by our own rate limits.", ["bucket"]
)


def count_lookups(identifiers: int, matched: int) -> None:
    LOOKUP_IDENTIFIERS.inc(identifiers)
    LOOKUP_MATCHED.inc(matched)


def platform_wait(platform: str, reason: str, seconds: float) -> None:
    """A platform client waits on a rate limit (reason: pacing, 429, throttled)."""
    PLATFORM_WAITS.labels(platform, reason).inc()
    PLATFORM_WAIT_SECONDS.labels(platform, reason).inc(max(seconds, 0.0))


def sync_page(written: dict[str, int]) -> None:
    """One page committed by the sync engine (platform and stream from the context)."""
    platform, stream = platform_var.get() or "unknown", stream_var.get() or "unknown"
    SYNC_PAGES.labels(platform, stream).inc()
    SYNC_RECORDS.labels(platform, stream).inc(
        written.get("customers", 0) + written.get("orders", 0)
    )
    if written.get("skipped"):
        SYNC_SKIPPED.labels(platform, stream).inc(written["skipped"])


@contextlib.contextmanager
def sync_stream(platform: str, stream: str) -> Iterator[None]:
    """The engine pulls one stream: log lines and metrics name it; errors are counted."""
    with bound(platform=platform, stream=stream):
        try:
            yield
        except Exception as error:
            SYNC_ERRORS.labels(platform, stream, type(error).__name__).inc()
            raise


# Job queue depth and age: read from procrastinate_jobs when scraped.
JOBS_QUERY = """
SELECT queue_name, status::text, count(*),
       coalesce(extract(epoch FROM now() - min(
           coalesce((SELECT min(e.at) FROM procrastinate_events e
                     WHERE e.job_id = j.id AND e.type = 'deferred'), now())
       )), 0)
FROM procrastinate_jobs j
WHERE status IN ('todo', 'doing')
GROUP BY 1, 2
"""
JOBS_SCRAPE_TIMEOUT_SECONDS = 2.0


async def job_queue_rows() -> list[tuple[str, str, int, float]]:
    """(queue, status, jobs, age in seconds of the oldest) of waiting and running jobs."""
    import psycopg

    from athos_identity.db import as_libpq_url, database_url

    async def query() -> list[tuple[str, str, int, float]]:
        async with await psycopg.AsyncConnection.connect(
            as_libpq_url(database_url()),
            autocommit=True,
            connect_timeout=2,
            options="-c statement_timeout=1500",
        ) as connection:
            cursor = await connection.execute(JOBS_QUERY)
            return [(q, s, int(n), float(age)) for q, s, n, age in await cursor.fetchall()]

    return await asyncio.wait_for(query(), JOBS_SCRAPE_TIMEOUT_SECONDS)


class _Families:
    """A collector of metric families computed before the scrape."""

    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> Iterator[Any]:
        yield from self.families


async def _job_families() -> list[Any]:
    depth = GaugeMetricFamily(
        "athos_jobs",
        "Jobs waiting (todo) or running (doing), by queue.",
        labels=["queue", "status"],
    )
    age = GaugeMetricFamily(
        "athos_jobs_oldest_age_seconds",
        "Age of the oldest waiting or running job, by queue.",
        labels=["queue", "status"],
    )
    ok = GaugeMetricFamily("athos_jobs_scrape_ok", "1 when the job queue could be read.")
    try:
        rows = await job_queue_rows()
    except Exception as error:  # the database is slow or down: metrics still answer
        logging.getLogger(__name__).warning("job queue metrics: %s", type(error).__name__)
        ok.add_metric([], 0)
        return [ok]
    seen = set()
    for queue, status, count, oldest in rows:
        depth.add_metric([queue, status], count)
        age.add_metric([queue, status], max(oldest, 0.0))
        seen.add((queue, status))
    for queue in {q for q, _ in seen} | {"pulls"}:
        for status in ("todo", "doing"):
            if (queue, status) not in seen:
                depth.add_metric([queue, status], 0)
                age.add_metric([queue, status], 0)
    ok.add_metric([], 1)
    return [depth, age, ok]


def _process_registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


async def render_metrics() -> bytes:
    """The exposition text: this process's (or every process's) metrics and the queue."""
    jobs = CollectorRegistry(auto_describe=False)
    jobs.register(_Families(await _job_families()))  # type: ignore[arg-type]
    return generate_latest(_process_registry()) + generate_latest(jobs)


METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST


def serve_worker_metrics(port: int | None, host: str = "0.0.0.0") -> None:  # noqa: S104
    """A worker's own /metrics (sync pages, records, errors, platform waits) on `port`;
    nothing when no port is set (then the worker's figures are seen only in multi-process
    mode, through an API process of the same host)."""
    if port:
        from prometheus_client import start_http_server

        start_http_server(port, addr=host, registry=_process_registry())


# --- the HTTP middleware ------------------------------------------------------------------

REQUEST_ID_HEADER = b"x-request-id"
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
access_log = logging.getLogger("athos_identity.access")


def _request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """The caller's X-Request-ID when it is a plain token, else a fresh one: a header the
    caller controls is never logged unless it looks like an id."""
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            if _REQUEST_ID.match(value):
                return value.decode()
            break
    return uuid.uuid4().hex


class RequestContextMiddleware:
    """Request id in and out, context ids reset per request, latency metric, access log.

    A plain ASGI middleware (no BaseHTTPMiddleware): it adds a few microseconds to a
    look-up, not a task and a queue."""

    def __init__(self, app: Any, *, access_log_enabled: bool = True) -> None:
        self.app = app
        self.access_log_enabled = access_log_enabled

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope.get("headers") or [])
        encoded = request_id.encode()
        tokens = [
            (request_id_var, request_id_var.set(request_id)),
            *((var, var.set(None)) for var in (tenant_id_var, key_id_var, connector_id_var)),
            (run_id_var, run_id_var.set(None)),
        ]
        status = 500

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (REQUEST_ID_HEADER, encoded)],
                }
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope.get("method", "")
            HTTP_REQUEST_SECONDS.labels(method, route, f"{status // 100}xx").observe(elapsed)
            if self.access_log_enabled and access_log.isEnabledFor(logging.INFO):
                # The route template, never the raw path or query (they may carry values).
                access_log.info(
                    "%s %s %d",
                    method,
                    route,
                    status,
                    extra={
                        "method": method,
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )
            for var, token in reversed(tokens):
                var.reset(token)
