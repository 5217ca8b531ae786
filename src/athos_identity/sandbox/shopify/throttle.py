"""Shopify's calculated-query-cost leaky bucket.

Restore happens on the sandbox clock; ``throttleStatus`` reports the restore rate in real
seconds (documented rate x time factor) so a client that paces from it paces correctly.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from athos_identity.sandbox.clock import Clock

BUCKET_SIZE = 2000.0
UNLIMITED_REPORTED_RATE = 1_000_000.0


@dataclass(frozen=True)
class ThrottleStatus:
    maximum_available: float
    currently_available: float
    restore_rate: float

    def as_json(self) -> dict[str, float]:
        return {
            "maximumAvailable": self.maximum_available,
            "currentlyAvailable": math.floor(self.currently_available),
            "restoreRate": self.restore_rate,
        }


class CostBucket:
    def __init__(self, clock: Clock, restore_rate: float, size: float = BUCKET_SIZE) -> None:
        self._clock = clock
        self.restore_rate = restore_rate
        self.size = size
        self._available = size
        self._stamp = clock.now()
        self._lock = threading.Lock()

    def try_spend(self, cost: float) -> tuple[bool, ThrottleStatus]:
        """Take ``cost`` points if available; otherwise leave the bucket untouched."""
        with self._lock:
            self._restore()
            if cost > self._available:
                return False, self._status()
            self._available -= cost
            return True, self._status()

    def refund(self, points: float) -> ThrottleStatus:
        """Give back what was requested but not used (actual cost below requested)."""
        with self._lock:
            self._restore()
            self._available = min(self.size, self._available + max(0.0, points))
            return self._status()

    def drain(self) -> None:
        """Empty the bucket (fault injection: THROTTLED on the next request)."""
        with self._lock:
            self._restore()
            self._available = 0.0

    def status(self) -> ThrottleStatus:
        with self._lock:
            self._restore()
            return self._status()

    def _restore(self) -> None:
        now = self._clock.now()
        if math.isinf(self.restore_rate):
            self._available = self.size
        else:
            restored = (now - self._stamp) * self.restore_rate
            self._available = min(self.size, self._available + restored)
        self._stamp = now

    def _status(self) -> ThrottleStatus:
        rate = (
            UNLIMITED_REPORTED_RATE
            if math.isinf(self.restore_rate)
            else self.restore_rate * self._clock.factor
        )
        return ThrottleStatus(self.size, self._available, rate)
