"""A clock that can run faster than real time.

Throttle buckets, quota windows and token lifetimes read this clock, so a time factor of 60
turns a 30-second BigCommerce window into half a real second and rate-limit behaviour can be
exercised in a test run instead of an afternoon.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime


class Clock:
    """Virtual wall clock: ``virtual = anchor + (real elapsed) * factor``."""

    def __init__(self, factor: float = 1.0) -> None:
        if factor <= 0:
            raise ValueError("time factor must be positive")
        self._lock = threading.Lock()
        self._factor = float(factor)
        self._real_anchor = time.monotonic()
        self._virtual_anchor = time.time()

    @property
    def factor(self) -> float:
        return self._factor

    def set_factor(self, factor: float) -> None:
        """Change speed without a jump: re-anchor at the current virtual instant."""
        if factor <= 0:
            raise ValueError("time factor must be positive")
        with self._lock:
            now_virtual = self._now_unlocked()
            self._real_anchor = time.monotonic()
            self._virtual_anchor = now_virtual
            self._factor = float(factor)

    def now(self) -> float:
        """Virtual epoch seconds."""
        with self._lock:
            return self._now_unlocked()

    def now_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.now(), tz=UTC)

    def to_real_seconds(self, virtual_seconds: float) -> float:
        """How long a virtual duration lasts on the wall clock (what clients actually wait)."""
        return virtual_seconds / self._factor

    async def sleep(self, virtual_seconds: float) -> None:
        await asyncio.sleep(max(0.0, self.to_real_seconds(virtual_seconds)))

    def _now_unlocked(self) -> float:
        return self._virtual_anchor + (time.monotonic() - self._real_anchor) * self._factor
