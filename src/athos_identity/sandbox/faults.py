"""Switchable faults, per platform, at runtime (POST /sandbox/faults).

HTTP-level faults are applied by :class:`FaultMiddleware` in front of the platform routes
(never in front of /sandbox/*): 429 bursts, 5xx, slow responses, truncated JSON bodies and
connections dropped mid-body. Bulk-operation faults are consulted by the bulk runner.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass
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
    status: int = 503  # for 5xx
    delay_seconds: float = 5.0  # for slow (real seconds)
    retry_after_seconds: float = 1.0  # for 429
    path_contains: str | None = None  # only requests whose path contains this
    fired: int = 0

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


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
        rate, count = spec.get("rate"), spec.get("count")
        if (rate is None) == (count is None):
            raise FaultSpecError("give exactly one of rate (0..1) or count (>= 1)")
        if rate is not None and not 0 < float(rate) <= 1:
            raise FaultSpecError("rate must be in (0, 1]")
        if count is not None and int(count) < 1:
            raise FaultSpecError("count must be >= 1")
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
        with self._lock:
            for fault in list(self._faults.values()):
                if fault.platform != platform or fault.kind not in kinds:
                    continue
                if fault.path_contains and fault.path_contains not in path:
                    continue
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        del self._faults[fault.id]
                elif self._random.random() >= (fault.rate or 0.0):
                    continue
                fault.fired += 1
                return fault
        return None

    def as_json(self) -> list[dict[str, Any]]:
        with self._lock:
            return [fault.as_json() for fault in self._faults.values()]


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
    headers = {
        "X-Rate-Limit-Requests-Left": "0",
        "X-Rate-Limit-Requests-Quota": "150",
        "X-Rate-Limit-Time-Window-Ms": "30000",
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
