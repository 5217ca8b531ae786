"""Per-store request quota, as BigCommerce reports it in X-Rate-Limit-* headers.

The quota is shared by every API account of the store. Windows run on the sandbox clock;
headers are in real milliseconds so a client that sleeps what it is told sleeps correctly
under time acceleration.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from athos_identity.sandbox.clock import Clock

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
        unlimited = math.isinf(self.per_window)
        quota = UNLIMITED_REPORTED_QUOTA if unlimited else int(self.per_window)
        left = quota - self._used
        reset_virtual = max(0.0, self._window_start + WINDOW_SECONDS - now)
        window_ms = round(self._clock.to_real_seconds(WINDOW_SECONDS) * 1000)
        reset_ms = math.ceil(self._clock.to_real_seconds(reset_virtual) * 1000)
        return {
            "X-Rate-Limit-Requests-Left": str(max(0, left)),
            "X-Rate-Limit-Requests-Quota": str(quota),
            "X-Rate-Limit-Time-Window-Ms": str(window_ms),
            "X-Rate-Limit-Time-Reset-Ms": str(reset_ms),
        }
