"""ShopifyClient pacing and retries, against scripted responses (no network, no sleeping)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from athos_identity.connectors.shopify.client import (
    CostPacer,
    CredentialRejected,
    PermissionMissing,
    ShopifyClient,
    ShopifyQueryError,
    ShopifyUnavailable,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 3))
        self.now += seconds


def cost(requested: int, available: float, rate: float = 100.0) -> dict[str, Any]:
    return {
        "cost": {
            "requestedQueryCost": requested,
            "actualQueryCost": requested,
            "throttleStatus": {
                "maximumAvailable": 2000.0,
                "currentlyAvailable": available,
                "restoreRate": rate,
            },
        }
    }


def client_with(responses: list[httpx.Response], clock: FakeClock) -> ShopifyClient:
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["X-Shopify-Access-Token"] == "shpat_test"
        return queue.pop(0)

    return ShopifyClient(
        "demo.myshopify.com",
        "shpat_test",
        transport=httpx.MockTransport(handler),
        sleep=clock.sleep,
        max_retries=3,
        pacer=CostPacer(clock=clock),
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def test_throttled_waits_from_throttle_status_then_succeeds(clock: FakeClock) -> None:
    throttled = {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
                 "extensions": cost(500, 100)}  # fmt: skip
    ok = {"data": {"shop": {"name": "x"}}, "extensions": cost(500, 1400)}
    async with client_with([httpx.Response(200, json=throttled),
                            httpx.Response(200, json=ok)], clock) as client:  # fmt: skip
        assert await client.query("{ shop { name } }") == {"shop": {"name": "x"}}
    assert clock.sleeps == [4.0]  # (500 - 100) / 100 per second


async def test_paces_before_sending_when_the_bucket_is_low(clock: FakeClock) -> None:
    low = {"data": {"a": 1}, "extensions": cost(300, 50)}
    async with client_with([httpx.Response(200, json=low)] * 2, clock) as client:
        await client.query("{ a }")
        await client.query("{ a }")  # needs 300, has 50: waits 2.5 s before sending
    assert clock.sleeps == [2.5]
    assert client.pacer.waits == 1


async def test_429_retry_after_and_5xx_backoff(clock: FakeClock) -> None:
    responses = [
        httpx.Response(429, headers={"Retry-After": "2.0"}),
        httpx.Response(503),
        httpx.Response(200, content=b'{"data": {"a"'),  # truncated body
        httpx.Response(200, json={"data": {"a": 1}, "extensions": cost(1, 1999)}),
    ]
    async with client_with(responses, clock) as client:
        assert await client.query("{ a }") == {"a": 1}
    assert clock.sleeps[0] == 2.0 and len(clock.sleeps) == 3


async def test_gives_up_after_the_retries(clock: FakeClock) -> None:
    async with client_with([httpx.Response(502)] * 4, clock) as client:
        with pytest.raises(ShopifyUnavailable):
            await client.query("{ a }")


async def test_401_403_and_query_errors_are_not_retried(clock: FakeClock) -> None:
    async with client_with([httpx.Response(401, json={"errors": "Invalid"})], clock) as client:
        with pytest.raises(CredentialRejected) as raised:
            await client.query("{ a }")
        assert "shpat_test" not in raised.value.detail and "shpat_test" not in repr(client)
    denied = {"errors": [{"message": "Access denied", "extensions": {"code": "ACCESS_DENIED"}}]}
    async with client_with([httpx.Response(200, json=denied)], clock) as client:
        with pytest.raises(PermissionMissing):
            await client.query("{ customers(first: 1) { nodes { id } } }")
    bad = {"errors": [{"message": "Field 'x' doesn't exist on type 'Shop'"}]}
    async with client_with([httpx.Response(200, json=bad)], clock) as client:
        with pytest.raises(ShopifyQueryError) as error:
            await client.query("{ shop { x } }")
        assert "doesn't exist" in error.value.detail
    assert clock.sleeps == []
