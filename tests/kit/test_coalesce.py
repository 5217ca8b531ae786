"""The look-up micro-batching: who shares a fetch, who waits, what a failure reaches."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from athos_identity.kit.coalesce import Coalescer, abandon


class Recorder:
    """A fetch that records what it was asked and answers once released."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[int]]] = []
        self.release = asyncio.Event()
        self.fail_on: int | None = None

    async def __call__(self, group: str, items: list[int]) -> dict[int, str]:
        self.calls.append((group, items))
        await self.release.wait()
        if self.fail_on in items:
            raise RuntimeError("the database went away")
        return {item: f"{group}:{item}" for item in items}


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_lone_request_is_fetched_at_once() -> None:
    fetch = Recorder()
    fetch.release.set()
    coalescer = Coalescer(fetch, max_fetches=1, max_items=100)
    assert await coalescer.get("acme", [1, 2]) == {1: "acme:1", 2: "acme:2"}
    assert fetch.calls == [("acme", [1, 2])]


async def test_requests_arriving_while_a_fetch_runs_share_the_next_one() -> None:
    fetch = Recorder()
    coalescer = Coalescer(fetch, max_fetches=1, max_items=100)
    first = coalescer.submit("acme", [1])
    await settle()
    waiting = [coalescer.submit("acme", [n]) for n in (2, 3, 4)]
    await settle()
    assert fetch.calls == [("acme", [1])], "the others wait for the running fetch"
    fetch.release.set()
    assert (await first)[1] == "acme:1"
    results = await asyncio.gather(*waiting)
    assert fetch.calls == [("acme", [1]), ("acme", [2, 3, 4])]
    assert [r[n] for r, n in zip(results, (2, 3, 4), strict=True)] == ["acme:2", "acme:3", "acme:4"]


async def test_groups_never_share_a_fetch() -> None:
    fetch = Recorder()
    coalescer = Coalescer(fetch, max_fetches=1, max_items=100)
    acme = coalescer.submit("acme", [1])
    globex = coalescer.submit("globex", [1])
    await settle()
    fetch.release.set()
    assert (await acme) == {1: "acme:1"}
    assert (await globex) == {1: "globex:1"}
    assert sorted(fetch.calls) == [("acme", [1]), ("globex", [1])]


async def test_a_group_runs_at_most_max_fetches_at_once_of_at_most_max_items() -> None:
    fetch = Recorder()
    coalescer = Coalescer(fetch, max_fetches=2, max_items=3)
    futures = [coalescer.submit("acme", [n, n + 100]) for n in range(5)]
    await settle()
    assert len(fetch.calls) == 2, "two fetches started, the rest wait"
    fetch.release.set()
    await asyncio.gather(*futures)
    assert all(len(items) <= 3 for _, items in fetch.calls)
    fetched = sorted(i for _, items in fetch.calls for i in items)
    assert fetched == sorted([n for n in range(5)] + [n + 100 for n in range(5)])


async def test_a_request_larger_than_max_items_is_fetched_alone() -> None:
    fetch = Recorder()
    fetch.release.set()
    coalescer = Coalescer(fetch, max_fetches=1, max_items=2)
    result = await coalescer.get("acme", [1, 2, 3])
    assert fetch.calls == [("acme", [1, 2, 3])] and len(result) == 3


async def test_a_failed_fetch_fails_its_requests_only() -> None:
    fetch = Recorder()
    fetch.fail_on = 2
    coalescer = Coalescer(fetch, max_fetches=1, max_items=100)
    first = coalescer.submit("acme", [1])
    await settle()
    doomed = [coalescer.submit("acme", [2]), coalescer.submit("acme", [3])]
    fetch.release.set()
    assert (await first) == {1: "acme:1"}
    for future in doomed:
        with pytest.raises(RuntimeError, match="went away"):
            await future
    fetch.fail_on = None
    assert (await coalescer.get("acme", [4])) == {4: "acme:4"}, "the next request is served"


async def test_an_abandoned_request_is_not_fetched() -> None:
    fetch = Recorder()
    coalescer = Coalescer(fetch, max_fetches=1, max_items=100)
    first = coalescer.submit("acme", [1])
    await settle()
    gone = coalescer.submit("acme", [2])
    kept = coalescer.submit("acme", [3])
    abandon(gone)
    fetch.release.set()
    await first
    assert (await kept)[3] == "acme:3"
    assert fetch.calls == [("acme", [1]), ("acme", [3])]


def test_a_new_event_loop_is_not_held_up_by_one_closed_mid_fetch() -> None:
    opened = {"gate": False}

    async def fetch(group: str, items: list[int]) -> dict[int, int]:
        while not opened["gate"]:  # noqa: ASYNC110 (an asyncio.Event is bound to one loop)
            await asyncio.sleep(0.001)
        return {item: item for item in items}

    coalescer = Coalescer(fetch, max_fetches=1, max_items=100)

    async def start_and_leave() -> None:
        coalescer.submit("acme", [1])
        await asyncio.sleep(0.01)  # the fetch is running, stuck at the gate

    asyncio.run(start_and_leave())  # as a test or a CLI command ends, the fetch pending
    opened["gate"] = True

    async def look_up() -> dict[int, int]:
        return await asyncio.wait_for(coalescer.get("acme", [2]), timeout=5)

    assert asyncio.run(look_up()) == {2: 2}


async def test_a_fetch_cancelled_before_it_ran_frees_its_place() -> None:
    fetch = Recorder()
    fetch.release.set()
    coalescer = Coalescer(fetch, max_fetches=1, max_items=100)
    first = coalescer.submit("acme", [1])
    for task in list(coalescer._tasks):  # as a closing loop cancels it
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(first, timeout=5)
    assert await asyncio.wait_for(coalescer.get("acme", [2]), timeout=5) == {2: "acme:2"}


async def test_a_fetch_does_not_run_in_the_context_of_the_request_that_started_it() -> None:
    request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("rid", default=None)
    seen: list[str | None] = []

    async def fetch(group: str, items: list[int]) -> None:
        seen.append(request_id.get())

    coalescer = Coalescer(fetch, max_fetches=1, max_items=100)
    request_id.set("request-1")
    await coalescer.get("acme", [1])
    assert seen == [None], "its log lines would carry another request's id"
