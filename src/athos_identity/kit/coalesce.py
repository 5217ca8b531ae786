"""Concurrent requests of one group share a fetch (the look-up hot path's micro-batching).

A messaging service sends single look-ups by the hundred per second. One statement per
look-up spends most of its database time, and much of the API's, on the statement itself
rather than on the keys it reads. Here the requests of a group (a tenant) that arrive while
its fetches run wait for the next fetch and go together, up to ``max_items`` items. A lone
request is fetched at once, so a quiet service adds no delay.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from weakref import WeakKeyDictionary

G = TypeVar("G", bound=Hashable)
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Group(Generic[T, R]):
    waiting: deque[tuple[Sequence[T], asyncio.Future[R]]] = field(default_factory=deque)
    fetching: int = 0


class Coalescer(Generic[G, T, R]):
    """Runs ``fetch(group, items)`` for the items of every waiting request of a group at once.

    At most ``max_fetches`` fetches of a group run at a time; each takes waiting requests in
    arrival order until it holds ``max_items`` items (always at least one request). Every
    request of a fetch receives the fetch's whole result: it reads its own items from it.
    A failed fetch fails its requests only.
    """

    def __init__(
        self,
        fetch: Callable[[G, list[T]], Awaitable[R]],
        *,
        max_fetches: int,
        max_items: int,
    ) -> None:
        self._fetch = fetch
        self.max_fetches = max_fetches
        self.max_items = max_items
        # Per event loop: a loop closed with a fetch pending leaves its state behind, and a
        # later loop (tests, CLI commands) must not wait on it.
        self._groups: WeakKeyDictionary[asyncio.AbstractEventLoop, dict[G, _Group[T, R]]] = (
            WeakKeyDictionary()
        )
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, group: G, items: Sequence[T]) -> asyncio.Future[R]:
        """Queue a request; its future resolves to the result of the fetch that took it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        groups = self._groups.setdefault(loop, {})
        state = groups.setdefault(group, _Group())
        state.waiting.append((items, future))
        if state.fetching < self.max_fetches:
            state.fetching += 1
            # A context of its own: the fetch serves many requests, so it must not log
            # under the request id (or tenant, key) of the one that started it.
            drain = self._drain(groups, group, state)
            task = loop.create_task(drain, context=contextvars.Context())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return future

    async def get(self, group: G, items: Sequence[T]) -> R:
        return await self.submit(group, items)

    def _take(self, state: _Group[T, R]) -> list[tuple[Sequence[T], asyncio.Future[R]]]:
        taken: list[tuple[Sequence[T], asyncio.Future[R]]] = []
        count = 0
        while state.waiting:
            items, future = state.waiting[0]
            if future.done():  # its caller went away (a cancelled request)
                state.waiting.popleft()
                continue
            if taken and count + len(items) > self.max_items:
                break
            taken.append(state.waiting.popleft())
            count += len(items)
        return taken

    async def _drain(self, groups: dict[G, _Group[T, R]], group: G, state: _Group[T, R]) -> None:
        try:
            while taken := self._take(state):
                try:
                    result = await self._fetch(group, [i for items, _ in taken for i in items])
                except Exception as exc:
                    for _, future in taken:
                        if not future.done():
                            future.set_exception(exc)
                except BaseException:  # cancelled: the loop is closing
                    for _, future in taken:
                        future.cancel()
                    raise
                else:
                    for _, future in taken:
                        if not future.done():
                            future.set_result(result)
        finally:
            state.fetching -= 1
            if not state.fetching:
                for _, future in state.waiting:  # only left behind when cancelled
                    future.cancel()
                groups.pop(group, None)


def abandon(future: asyncio.Future[Any]) -> None:
    """Give up on a submitted request: skipped if still waiting, its failure not reported."""
    if not future.cancel() and not future.cancelled():
        future.exception()  # marks a failure as seen; a result is simply dropped
