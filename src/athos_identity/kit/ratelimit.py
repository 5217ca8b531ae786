"""Limits on our own API: per-key request rates (token buckets) and request body sizes.

Rate limits are in-process token buckets keyed by API key id, one family for look-ups and
one for everything else (admin and operator calls). Taking a token is a dict read and a
little arithmetic: no lock, no database, nothing on the look-up hot path worth measuring.
With N API processes a key may send N times the configured rate in total; the limit
exists to stop a runaway client from starving others on one process, not to bill
(docs/operators.md, "Limits").
"""

from __future__ import annotations

import contextlib
import math
import time
import uuid
from collections.abc import Callable
from typing import Any

from fastapi import HTTPException

from athos_identity.kit.errors import BODY_METHODS, AppError
from athos_identity.settings import get_settings

LOOKUP, ADMIN = "lookup", "admin"
LOOKUP_PATH_PREFIX = "/v1/identity/lookup"


class TooManyRequests(AppError):
    status, title, slug = 429, "Too many requests", "rate-limited"


class TokenBuckets:
    """One bucket per key: `burst` tokens, refilled at `rate` per second."""

    MAX_KEYS = 100_000  # a bound on memory; past it the buckets start afresh (all full)

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self.clock = clock
        self._buckets: dict[Any, list[float]] = {}

    def take(self, key: Any) -> float:
        """0.0 when a request may go now (a token is taken), else seconds until one may."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.MAX_KEYS:
                self._buckets.clear()
            self._buckets[key] = [self.burst - 1.0, now]
            return 0.0
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / self.rate


_limiters: dict[tuple[str, float, float], TokenBuckets] = {}


def limiter(kind: str) -> TokenBuckets | None:
    """The buckets of `kind` under the current settings; None when that limit is off."""
    settings = get_settings()
    if kind == LOOKUP:
        rate, burst = settings.rate_limit_lookup_per_second, settings.rate_limit_lookup_burst
    else:
        rate, burst = settings.rate_limit_admin_per_second, settings.rate_limit_admin_burst
    if rate <= 0:
        return None
    found = _limiters.get((kind, rate, burst))
    if found is None:
        found = _limiters[(kind, rate, burst)] = TokenBuckets(rate, burst or rate)
    return found


def kind_of(path: str) -> str:
    return LOOKUP if path.startswith(LOOKUP_PATH_PREFIX) else ADMIN


def check(key_id: uuid.UUID, path: str) -> None:
    """Take a token for this key's request to `path`, or raise 429 with Retry-After."""
    kind = kind_of(path)
    buckets = limiter(kind)
    if buckets is None:
        return
    wait = buckets.take(key_id)
    if wait > 0:
        from athos_identity.observability import RATE_LIMITED

        RATE_LIMITED.labels(kind).inc()
        raise TooManyRequests(
            f"This API key sent more {kind} requests than its limit of "
            f"{buckets.rate:g} per second; retry after the time in Retry-After.",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )


def reset() -> None:
    """Forget every bucket (tests)."""
    _limiters.clear()


# --- request bodies -----------------------------------------------------------------------

_BODY_METHODS = frozenset(method.upper() for method in BODY_METHODS)  # as documented


class _BodyTooLarge(HTTPException):
    """Raised from `receive` mid-body; an HTTPException so that FastAPI's body parsing lets
    it through instead of turning it into a 400."""

    def __init__(self) -> None:
        super().__init__(status_code=413)


async def _send_413(send: Any, limit: int) -> None:
    import json

    body = json.dumps(
        {
            "type": "/problems/payload-too-large",
            "title": "Payload too large",
            "status": 413,
            "detail": f"The request body is larger than {limit} bytes; send smaller batches.",
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodySizeLimitMiddleware:
    """Refuse request bodies over `max_bytes` with 413 problem+json, before any parsing:
    at once from Content-Length, or while the body streams in (chunked uploads)."""

    def __init__(self, app: Any, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope.get("headers") or []:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    await _send_413(send, limit)
                    return
                break
        received = 0
        too_large = False

        async def counting_receive() -> dict[str, Any]:
            nonlocal received, too_large
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            if not too_large:  # the app's own answer to the aborted read is replaced
                await send(message)

        with contextlib.suppress(_BodyTooLarge):
            await self.app(scope, counting_receive, guarded_send)
        if too_large:
            await _send_413(send, limit)
