"""Per-store request quota, as BigCommerce reports it in X-Rate-Limit-* headers.

The quota is shared by every API account of the store. Windows run on the sandbox clock;
headers are in real milliseconds so a client that sleeps what it is told sleeps correctly
under time acceleration.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

from athos_identity.sandbox.clock import Clock
from athos_identity.sandbox.faults import ASGIApp, Message, Receive, Scope, Send

WINDOW_SECONDS = 30.0
UNLIMITED_REPORTED_QUOTA = 1_000_000_000


@dataclass(frozen=True)
class QuotaVerdict:
    allowed: bool
    headers: dict[str, str]


class RequestQuota:
    def __init__(self, clock: Clock, per_window: float) -> None:
        self._clock = clock
        self.per_window = per_window
        self._lock = threading.Lock()
        self._window_start = clock.now()
        self._used = 0

    def take(self) -> QuotaVerdict:
        """Count one request; refuse once the window's quota is spent."""
        with self._lock:
            now = self._clock.now()
            if now >= self._window_start + WINDOW_SECONDS:
                elapsed_windows = (now - self._window_start) // WINDOW_SECONDS
                self._window_start += elapsed_windows * WINDOW_SECONDS
                self._used = 0
            allowed = self._used < self.per_window
            if allowed:
                self._used += 1
            return QuotaVerdict(allowed, self._headers(now))

    def peek(self) -> dict[str, str]:
        with self._lock:
            return self._headers(self._clock.now())

    def _headers(self, now: float) -> dict[str, str]:
        reset_virtual = max(0.0, self._window_start + WINDOW_SECONDS - now)
        return quota_headers(self._clock, self.per_window, self._used, reset_virtual)


def quota_headers(
    clock: Clock, per_window: float, used: int = 0, reset_virtual: float = WINDOW_SECONDS
) -> dict[str, str]:
    """The four X-Rate-Limit-* headers; the defaults describe a fresh, unused window."""
    unlimited = math.isinf(per_window)
    quota = UNLIMITED_REPORTED_QUOTA if unlimited else int(per_window)
    window_ms = round(clock.to_real_seconds(WINDOW_SECONDS) * 1000)
    reset_ms = math.ceil(clock.to_real_seconds(reset_virtual) * 1000)
    return {
        "X-Rate-Limit-Requests-Left": str(max(0, quota - used)),
        "X-Rate-Limit-Requests-Quota": str(quota),
        "X-Rate-Limit-Time-Window-Ms": str(window_ms),
        "X-Rate-Limit-Time-Reset-Ms": str(reset_ms),
    }


class QuotaHeaders:
    """Pure ASGI: every BigCommerce response carries the quota headers, errors and injected
    faults included. Headers a route already set (the counted request's) are kept."""

    def __init__(self, app: ASGIApp, headers_for: Callable[[str], dict[str, str]]) -> None:
        self.app = app
        self.headers_for = headers_for  # store hash -> current headers (without counting)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        store_hash = _store_hash(scope.get("path", "")) if scope["type"] == "http" else None
        if store_hash is None:
            await self.app(scope, receive, send)
            return

        async def send_with_quota(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in self.headers_for(store_hash).items():
                    if name.lower().encode() not in present:
                        headers.append((name.lower().encode(), value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_quota)


def _store_hash(path: str) -> str | None:
    prefix = "/bigcommerce/stores/"
    if not path.startswith(prefix):
        return None
    return path[len(prefix) :].split("/", 1)[0] or None
