"""Switchable faults, per platform, at runtime (POST /sandbox/faults).

HTTP-level faults are applied by :class:`FaultMiddleware` in front of the platform routes
(never in front of /sandbox/*): 429 bursts, 5xx, slow responses, truncated JSON bodies and
connections dropped mid-body. Bulk-operation faults are consulted by the bulk runner.

Which matching requests a fault hits: by rate (``rate``, a probability) or by schedule
(``after``: let the first N through; ``every``: hit every Nth one after those;
``for_seconds``: retire after that many real seconds); ``count`` retires it after N hits.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass, field
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PLATFORMS = ("shopify", "bigcommerce")
HTTP_KINDS = ("429", "5xx", "slow", "truncate", "drop")
BULK_KINDS = ("bulk_fail", "bulk_stuck")
KINDS = HTTP_KINDS + BULK_KINDS


class FaultSpecError(ValueError):
    pass


@dataclass
class Fault:
    id: int
    platform: str
    kind: str
    rate: float | None = None  # probability per matching request
    count: int | None = None  # fire this many times, then retire
    after: int = 0  # let this many matching requests through first
    every: int | None = None  # then hit every Nth matching request (Nth, 2Nth, ...)
    for_seconds: float | None = None  # retire this many real seconds after creation
    status: int = 503  # for 5xx
    delay_seconds: float = 5.0  # for slow (real seconds)
    retry_after_seconds: float = 1.0  # for 429
    path_contains: str | None = None  # only requests whose path contains this
    fired: int = 0
    seen: int = 0  # matching requests so far (hit or not)
    expires_at: float | None = field(default=None, repr=False)  # time.monotonic()

    def as_json(self) -> dict[str, Any]:
        body = asdict(self)
        del body["expires_at"]
        return body

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def scheduled_now(self) -> bool:
        """Counts this matching request; whether the schedule (not the rate) says hit it."""
        self.seen += 1
        position = self.seen - self.after  # 1 for the first request past the skipped ones
        if position < 1:
            return False
        return self.every is None or position % self.every == 0


class FaultRegistry:
    def __init__(self, seed: int) -> None:
        self._faults: dict[int, Fault] = {}
        self._next_id = 1
        self._random = random.Random(seed)  # noqa: S311 - reproducible "rate" faults per seed
        self._lock = threading.Lock()

    def add(self, spec: dict[str, Any]) -> Fault:
        platform = spec.get("platform")
        kind = str(spec.get("kind", ""))
        if platform not in PLATFORMS:
            raise FaultSpecError(f"platform must be one of {PLATFORMS}")
        if kind not in KINDS:
            raise FaultSpecError(f"kind must be one of {KINDS}")
        rate, count, every, for_seconds = (
            spec.get("rate"), spec.get("count"), spec.get("every"), spec.get("for_seconds")
        )  # fmt: skip
        try:
            after = int(spec.get("after") or 0)
            _check_schedule(rate, count, every, for_seconds, after)
        except FaultSpecError:
            raise
        except (TypeError, ValueError):
            raise FaultSpecError("rate, count, after, every and for_seconds are numbers") from None
        status = int(spec.get("status", 503))
        if kind == "5xx" and not 500 <= status <= 599:
            raise FaultSpecError("status must be 5xx")
        with self._lock:
            fault = Fault(
                id=self._next_id,
                platform=str(platform),
                kind=kind,
                rate=None if rate is None else float(rate),
                count=None if count is None else int(count),
                after=after,
                every=None if every is None else int(every),
                for_seconds=None if for_seconds is None else float(for_seconds),
                expires_at=None if for_seconds is None else time.monotonic() + float(for_seconds),
                status=status,
                delay_seconds=float(spec.get("delay_seconds", 5.0)),
                retry_after_seconds=float(spec.get("retry_after_seconds", 1.0)),
                path_contains=spec.get("path_contains"),
            )
            self._faults[fault.id] = fault
            self._next_id += 1
        return fault

    def remove(self, fault_id: int) -> bool:
        with self._lock:
            return self._faults.pop(fault_id, None) is not None

    def clear(self, platform: str | None = None) -> int:
        with self._lock:
            doomed = [f.id for f in self._faults.values() if platform in (None, f.platform)]
            for fault_id in doomed:
                del self._faults[fault_id]
            return len(doomed)

    def take(self, platform: str, kinds: tuple[str, ...], path: str = "") -> Fault | None:
        """The first matching fault that fires for this request, if any."""
        now = time.monotonic()
        with self._lock:
            for fault in list(self._faults.values()):
                if fault.expired(now):
                    del self._faults[fault.id]
                    continue
                if fault.platform != platform or fault.kind not in kinds:
                    continue
                if fault.path_contains and fault.path_contains not in path:
                    continue
                if not fault.scheduled_now():
                    continue
                if fault.rate is not None and self._random.random() >= fault.rate:
                    continue
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        del self._faults[fault.id]
                fault.fired += 1
                return fault
        return None

    def as_json(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        with self._lock:
            return [f.as_json() for f in self._faults.values() if not f.expired(now)]


def _check_schedule(rate: Any, count: Any, every: Any, for_seconds: Any, after: int) -> None:
    if rate is None and count is None and every is None and for_seconds is None:
        raise FaultSpecError(
            "give rate (0..1) or a schedule: count (>= 1), every (>= 1), for_seconds (> 0), "
            "optionally after (>= 0)"
        )
    if rate is not None and every is not None:
        raise FaultSpecError("give rate or every, not both")
    if rate is not None and not 0 < float(rate) <= 1:
        raise FaultSpecError("rate must be in (0, 1]")
    if count is not None and int(count) < 1:
        raise FaultSpecError("count must be >= 1")
    if every is not None and int(every) < 1:
        raise FaultSpecError("every must be >= 1")
    if for_seconds is not None and float(for_seconds) <= 0:
        raise FaultSpecError("for_seconds must be > 0")
    if after < 0:
        raise FaultSpecError("after must be >= 0")


def platform_of(path: str) -> str | None:
    for platform in PLATFORMS:
        if path.startswith(f"/{platform}/"):
            return platform
    return None


class FaultMiddleware:
    """Pure ASGI, so it can cut bodies and drop connections below the framework."""

    def __init__(self, app: ASGIApp, registry: FaultRegistry) -> None:
        self.app = app
        self.registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        platform = platform_of(path)
        fault = self.registry.take(platform, HTTP_KINDS, path) if platform else None
        if fault is None or platform is None:
            await self.app(scope, receive, send)
            return
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay_seconds)
            await self.app(scope, receive, send)
        elif fault.kind == "429":
            await _send_whole(send, *_too_many_requests(platform, fault))
        elif fault.kind == "5xx":
            await _send_whole(send, *_server_error(platform, fault.status))
        else:
            await self._mangle_body(scope, receive, send, drop=fault.kind == "drop")

    async def _mangle_body(self, scope: Scope, receive: Receive, send: Send, *, drop: bool) -> None:
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        cut = body[: max(1, len(body) // 2)] if body else b""
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        if drop:
            # Promise the full length, deliver half, then return: the server closes the socket.
            headers.append((b"content-length", str(len(body) or 1).encode()))
            await send(
                {
                    "type": "http.response.start",
                    "status": start.get("status", 200),
                    "headers": headers,
                }
            )
            await send({"type": "http.response.body", "body": cut, "more_body": True})
            return
        headers.append((b"content-length", str(len(cut)).encode()))
        await send(
            {"type": "http.response.start", "status": start.get("status", 200), "headers": headers}
        )
        await send({"type": "http.response.body", "body": cut})


def _too_many_requests(platform: str, fault: Fault) -> tuple[int, dict[str, str], bytes]:
    retry_ms = round(fault.retry_after_seconds * 1000)
    if platform == "shopify":
        body = {
            "errors": "Exceeded 2 calls per second for api client. "
            "Reduce request rates to resume uninterrupted service."
        }
        return 429, {"Retry-After": f"{fault.retry_after_seconds:.1f}"}, json.dumps(body).encode()
    body_v3 = {
        "status": 429,
        "title": "Too many requests",
        "type": "https://developer.bigcommerce.com/api-docs/getting-started/api-status-codes",
        "errors": {},
    }
    # The quota and window of the store's plan are added by QuotaHeaders (server.py).
    headers = {
        "X-Rate-Limit-Requests-Left": "0",
        "X-Rate-Limit-Time-Reset-Ms": str(retry_ms),
        "X-Retry-After": str(max(1, round(fault.retry_after_seconds))),
    }
    return 429, headers, json.dumps(body_v3).encode()


def _server_error(platform: str, status: int) -> tuple[int, dict[str, str], bytes]:
    if platform == "shopify":
        return status, {}, json.dumps({"errors": "Internal Server Error"}).encode()
    body = {
        "status": status,
        "title": "Internal Server Error" if status == 500 else "Service Unavailable",
        "type": "about:blank",
        "errors": {},
    }
    return status, {}, json.dumps(body).encode()


async def _send_whole(send: Send, status: int, headers: dict[str, str], body: bytes) -> None:
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw_headers += [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
