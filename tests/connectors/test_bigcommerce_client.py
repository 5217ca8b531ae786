"""The BigCommerce client: quota pacing, 429 waits, 5xx backoff, 401, pages (sandbox)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from athos_identity.connectors.bigcommerce import client as bc_client
from athos_identity.connectors.bigcommerce.client import (
    BigCommerceClient,
    BigCommerceUnavailable,
    CredentialRejected,
    PermissionMissing,
    RateLimitPacer,
)

TOKEN = "tok" + "x" * 28

pytest_plugins = ["bigcommerce_fixtures"]  # fixtures: bc_sandbox, bc_store, ...


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 3))
        self.now += seconds


def quota(left: int, reset_ms: int = 500) -> dict[str, str]:
    return {
        "X-Rate-Limit-Requests-Left": str(left),
        "X-Rate-Limit-Time-Reset-Ms": str(reset_ms),
        "X-Rate-Limit-Time-Window-Ms": "30000",
        "X-Rate-Limit-Requests-Quota": "150",
    }


def scripted(*responses: httpx.Response) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return queue.pop(0)

    return httpx.MockTransport(handler), seen


def make(transport: httpx.MockTransport, clock: FakeClock, **kw: Any) -> BigCommerceClient:
    return BigCommerceClient(
        "abc123", TOKEN, base_url="https://api.bigcommerce.com", transport=transport,
        sleep=clock.sleep, pacer=RateLimitPacer(clock=clock), max_retries=kw.pop("retries", 3),
        **kw,
    )  # fmt: skip


def ok(body: Any = None, **headers: str) -> httpx.Response:
    return httpx.Response(200, json=body if body is not None else {"data": []}, headers=headers)


async def test_waits_for_the_reset_when_no_request_is_left() -> None:
    clock = FakeClock()
    transport, seen = scripted(
        httpx.Response(200, json={"data": []}, headers=quota(1, 2000)),
        httpx.Response(200, json={"data": []}, headers=quota(0, 1500)),
        httpx.Response(200, json={"data": []}, headers=quota(149, 30000)),
    )
    async with make(transport, clock) as client:
        await client.get("/v3/customers")
        await client.get("/v3/customers")
        assert clock.sleeps == []
        await client.get("/v3/customers")  # none left: wait the reset first
    assert clock.sleeps == [1.5]
    assert len(seen) == 3
    assert (
        seen[0].headers["X-Auth-Token"] == TOKEN and seen[0].headers["Accept"] == "application/json"
    )


async def test_429_waits_the_longer_of_reset_and_retry_after() -> None:
    clock = FakeClock()
    transport, seen = scripted(
        httpx.Response(429, headers={**quota(0, 800), "X-Retry-After": "3"}),
        httpx.Response(429, headers={**quota(0, 4000), "X-Retry-After": "1"}),
        ok(),
    )
    async with make(transport, clock) as client:
        await client.get("/v3/customers")
    assert clock.sleeps == [3.0, 4.0]
    assert len(seen) == 3


async def test_5xx_and_network_errors_back_off_with_jitter_then_give_up() -> None:
    clock = FakeClock()
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise httpx.ReadTimeout("slow", request=request)
        if calls == 3:
            return httpx.Response(200, content=b'{"data": [', headers=quota(100))  # truncated
        return httpx.Response(503, headers=quota(100))

    async with make(httpx.MockTransport(handler), clock, retries=4) as client:
        with pytest.raises(BigCommerceUnavailable) as caught:
            await client.get("/v2/orders")
    assert calls == 5
    # exponential ceilings 0.5, 1, 2, 4 with equal jitter: each in [ceiling/2, ceiling]
    for attempt, slept in enumerate(clock.sleeps):
        ceiling = 0.5 * 2**attempt
        assert ceiling / 2 <= slept <= ceiling
    assert caught.value.status == 503 and TOKEN not in str(caught.value)


async def test_401_is_not_retried_and_403_names_the_permission() -> None:
    clock = FakeClock()
    transport, seen = scripted(httpx.Response(401, json=[{"status": 401}]))
    async with make(transport, clock) as client:
        with pytest.raises(CredentialRejected) as caught:
            await client.get("/v3/customers")
    assert len(seen) == 1 and clock.sleeps == []
    assert (
        TOKEN not in caught.value.detail
        and repr(client) == "BigCommerceClient(store_hash='abc123')"
    )

    transport, _ = scripted(httpx.Response(403, json={"status": 403}))
    async with make(transport, clock) as client:
        with pytest.raises(PermissionMissing):
            await client.get("/v2/orders")
    transport, _ = scripted(httpx.Response(403, json={"status": 403}))
    async with make(transport, clock) as client:
        assert await client.has_read_access("/v2/orders") is False


async def test_pages_ask_for_the_documented_parameters() -> None:
    clock = FakeClock()
    meta = {"pagination": {"total": 3, "total_pages": 2, "current_page": 1}}
    transport, seen = scripted(
        ok({"data": [{"id": 1}, {"id": 2}], "meta": meta}),
        httpx.Response(200, json=[{"id": 100}]),
        httpx.Response(204),
    )
    since = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    async with make(transport, clock) as client:
        customers = await client.customers_page(modified_since=since)
        orders = await client.orders_page(modified_since=since, limit=1)
        end = await client.orders_page(page=2, limit=1)
    assert customers.next_page == 2 and customers.total == 3 and len(customers.items) == 2
    params = dict(seen[0].url.params)
    assert params == {
        "page": "1", "limit": "250", "sort": "date_modified:asc",
        "date_modified:min": "2026-12-01T10:00:00Z", "include": "addresses",
    }  # fmt: skip
    params = dict(seen[1].url.params)
    assert params["min_date_modified"] == "Tue, 01 Dec 2026 10:00:00 +0000"
    assert params["include"] == "consignments.line_items" and params["sort"] == "date_modified:asc"
    assert orders.next_page == 2 and end.items == [] and end.next_page is None
    assert seen[0].url.path == "/stores/abc123/v3/customers"


async def test_pacers_are_shared_per_store() -> None:
    assert bc_client.pacer_for("https://x", "s1") is bc_client.pacer_for("https://x", "s1")
    assert bc_client.pacer_for("https://x", "s1") is not bc_client.pacer_for("https://x", "s2")


# --- against the sandbox --------------------------------------------------------------------


async def test_reads_every_customer_and_order_of_a_sandbox_store(bc_store: Any) -> None:
    async with BigCommerceClient(bc_store.store_hash, bc_store.token) as client:
        customers = [c async for page in client.iter_customers() for c in page.items]
        orders = [o async for page in client.iter_orders() for o in page.items]
    assert len({c["id"] for c in customers}) == 20
    assert len({o["id"] for o in orders}) == 20
    assert all("consignments" in o for o in orders)


async def test_sandbox_faults_are_absorbed(bc_store: Any) -> None:
    clock = FakeClock()
    bc_store.add_fault(kind="429", count=1, retry_after_seconds=2)
    bc_store.add_fault(kind="5xx", count=1, status=502)
    bc_store.add_fault(kind="truncate", count=1)
    async with BigCommerceClient(
        bc_store.store_hash, bc_store.token, sleep=clock.sleep, pacer=RateLimitPacer(clock=clock)
    ) as client:
        page = await client.customers_page(limit=5)
    assert len(page.items) == 5
    assert len(clock.sleeps) == 3 and max(clock.sleeps) >= 2.0, clock.sleeps


async def test_real_quota_headers_pace_a_small_plan(bc_settings: Any) -> None:
    store_hash = bc_settings.unique("q")
    with bc_settings.client() as sandbox:
        sandbox.post("/sandbox/bigcommerce/stores", json={
            "store_hash": store_hash, "customers": 5, "orders": 0, "plan": "standard"}
        ).raise_for_status()  # fmt: skip
        token = sandbox.post("/sandbox/bigcommerce/accounts", json={
            "store_hash": store_hash, "scopes": ["store_v2_customers_read_only"]}
        ).json()["access_token"]  # fmt: skip
    clock = FakeClock()
    pacer = RateLimitPacer(clock=clock)
    async with BigCommerceClient(store_hash, token, sleep=clock.sleep, pacer=pacer) as client:
        for _ in range(3):
            await client.customers_page(limit=1)
        assert pacer.quota == 150 and pacer.requests_left == 147
        pacer.requests_left = 0  # as if other apps had spent the store's quota
        await client.customers_page(limit=1)
    assert len(clock.sleeps) == 1 and 0 < clock.sleeps[0] <= 30


# --- keyed paging ---------------------------------------------------------------------------

BULK_IMPORT_AT = 2_000_000_000  # epoch seconds after every generated date


class RecordingTransport(httpx.AsyncHTTPTransport):
    """Real HTTP; remembers the query of every list request."""

    def __init__(self) -> None:
        super().__init__()
        self.lists: list[tuple[str, dict[str, str]]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        resource = request.url.path.rsplit("/", 1)[-1]
        if resource in ("customers", "orders"):
            self.lists.append((resource, dict(request.url.params)))
        return await super().handle_async_request(request)


async def test_keyed_pages_read_a_bulk_import_sharing_one_date_once_and_stop(
    bc_store: Any,
) -> None:
    """12 of 20 records share one date_modified (a bulk import), more than a page of 5:
    keyed paging must page on within that date rather than ask for it again forever."""
    data = bc_store.sandbox.state.stores[bc_store.store_hash].data
    customer_ids = [c.id for c in data.customers.iter_by_id()]
    order_ids = [o.id for o in data.orders.iter_by_id()]
    for customer_id in customer_ids[8:]:
        data.update_customer(customer_id, BULK_IMPORT_AT)
    for order_id in order_ids[8:]:
        data.update_order(order_id, BULK_IMPORT_AT)
    transport = RecordingTransport()

    async with (
        asyncio.timeout(30),
        BigCommerceClient(bc_store.store_hash, bc_store.token, transport=transport) as client,
    ):
        customers = [c["id"] async for page in client.iter_customers(limit=5) for c in page.items]
        orders = [o["id"] async for page in client.iter_orders(limit=5) for o in page.items]

    assert sorted(customers) == customer_ids and len(set(customers)) == len(customers)
    assert sorted(orders) == order_ids and len(set(orders)) == len(orders)
    customer_queries = [q for resource, q in transport.lists if resource == "customers"]
    fifth = data.customers.get(customer_ids[4])
    bulk = bc_client.iso_utc(datetime.fromtimestamp(BULK_IMPORT_AT, UTC))
    assert [(q.get("date_modified:min"), q["page"]) for q in customer_queries] == [
        (None, "1"),
        (bc_client.iso_utc(datetime.fromtimestamp(fifth.updated_at, UTC)), "1"),  # keyed
        (bulk, "1"),
        (bulk, "2"),  # a whole page shared the date: page on within it
        (bulk, "3"),
    ]
    order_pages = [q["page"] for resource, q in transport.lists if resource == "orders"]
    assert len(order_pages) == 5, "page numbers need 4: each page re-reads its last date"
