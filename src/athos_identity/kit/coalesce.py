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
import functools
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
        # Per event loop: the state of a loop closed with a fetch pending (a test's, a CLI
        # command's) must not hold up the next loop's requests; it is dropped then.
        self._groups: WeakKeyDictionary[asyncio.AbstractEventLoop, dict[G, _Group[T, R]]] = (
            WeakKeyDictionary()
        )
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, group: G, items: Sequence[T]) -> asyncio.Future[R]:
        """Queue a request; its future resolves to the result of the fetch that took it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        groups = self._groups.get(loop)
        if groups is None:
            self._forget_closed_loops()
            groups = self._groups[loop] = {}
        state = groups.setdefault(group, _Group())
        state.waiting.append((items, future))
        if state.fetching < self.max_fetches:
            self._start(loop, groups, group, state)
        return future

    async def get(self, group: G, items: Sequence[T]) -> R:
        return await self.submit(group, items)

    def _start(
        self,
        loop: asyncio.AbstractEventLoop,
        groups: dict[G, _Group[T, R]],
        group: G,
        state: _Group[T, R],
    ) -> None:
        state.fetching += 1
        # A context of its own: the fetch serves many requests, so it must not log under
        # the request id (or tenant, key) of the one that started it.
        task = loop.create_task(self._drain(group, state), context=contextvars.Context())
        self._tasks.add(task)
        # Counted down when the task ends, even cancelled before it ever ran.
        task.add_done_callback(functools.partial(self._drained, loop, groups, group, state))

    def _drained(
        self,
        loop: asyncio.AbstractEventLoop,
        groups: dict[G, _Group[T, R]],
        group: G,
        state: _Group[T, R],
        task: asyncio.Task[None],
    ) -> None:
        self._tasks.discard(task)
        state.fetching -= 1
        if task.cancelled():  # the loop is closing: nobody will fetch for the waiting
            if not state.fetching:
                for _, future in state.waiting:
                    future.cancel()
                state.waiting.clear()
        elif state.waiting and state.fetching < self.max_fetches:
            # Requests that arrived between the fetch's end and this callback.
            self._start(loop, groups, group, state)
            return
        if not state.fetching and not state.waiting and groups.get(group) is state:
            del groups[group]

    def _forget_closed_loops(self) -> None:
        for loop in [loop for loop in self._groups if loop.is_closed()]:
            del self._groups[loop]
        self._tasks = {task for task in self._tasks if not task.get_loop().is_closed()}

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

    async def _drain(self, group: G, state: _Group[T, R]) -> None:
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


def abandon(future: asyncio.Future[Any]) -> None:
    """Give up on a submitted request: skipped if still waiting, its failure not reported."""
    if not future.cancel() and not future.cancelled():
        future.exception()  # marks a failure as seen; a result is simply dropped
