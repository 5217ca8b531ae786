"""Outgoing webhook deliveries (Shopify webhooks, BigCommerce hooks), with a visible log."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import asdict, dataclass, field

import httpx

log = logging.getLogger(__name__)

RETRY_DELAYS_SECONDS = (0.2, 1.0)


@dataclass
class Delivery:
    id: str
    platform: str
    topic: str
    url: str
    headers: dict[str, str]
    body: str
    attempts: int = 0
    status: int | None = None
    error: str | None = None
    done: bool = False
    history: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return asdict(self)


class Dispatcher:
    """Fire-and-forget POSTs with a short retry; the last 500 deliveries stay inspectable."""

    def __init__(self, timeout_seconds: float = 5.0) -> None:
        self._timeout = timeout_seconds
        self._tasks: set[asyncio.Task[None]] = set()
        self.log: deque[Delivery] = deque(maxlen=500)
        self._client: httpx.AsyncClient | None = None

    def send(self, delivery: Delivery) -> None:
        self.log.append(delivery)
        task = asyncio.get_running_loop().create_task(self._deliver(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for in-flight deliveries (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        await self.drain()
        if self._client is not None:
            await self._client.aclose()

    async def _deliver(self, delivery: Delivery) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout)
        for delay in (0.0, *RETRY_DELAYS_SECONDS):
            if delay:
                await asyncio.sleep(delay)
            delivery.attempts += 1
            try:
                response = await self._client.post(
                    delivery.url, content=delivery.body.encode(), headers=delivery.headers
                )
            except httpx.HTTPError as error:
                delivery.error = f"{type(error).__name__}: {error}"
                delivery.history.append(delivery.error)
                continue
            delivery.status = response.status_code
            delivery.history.append(str(response.status_code))
            if response.status_code < 500:
                break
        delivery.done = True
