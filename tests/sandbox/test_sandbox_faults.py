"""Faults switched on at runtime, and time acceleration."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest
from sandbox_harness import RunningSandbox, running_sandbox
from typer.testing import CliRunner

from athos_identity.cli import app as cli_app
from athos_identity.sandbox.config import SandboxConfig
from athos_identity.sandbox.server import create_sandbox_app, is_loopback_host

STORE = "/bigcommerce/stores/demo01"


@pytest.fixture(scope="module")
def faulty() -> Iterator[RunningSandbox]:
    """A private server: faults are global to a sandbox."""
    with running_sandbox(SandboxConfig(customers=40, orders=20, seed=3)) as running:
        yield running


def bc(sandbox: RunningSandbox, timeout: float = 5.0) -> httpx.Client:
    token = sandbox.state.config.default_bigcommerce_token("demo01")
    return httpx.Client(
        base_url=sandbox.url + STORE, headers={"X-Auth-Token": token}, timeout=timeout
    )


def add_fault(sandbox: RunningSandbox, **spec: object) -> dict[str, object]:
    with sandbox.client() as client:
        response = client.post("/sandbox/faults", json=spec)
        assert response.status_code == 201, response.text
        return response.json()


@pytest.fixture(autouse=True)
def no_faults_left(faulty: RunningSandbox) -> Iterator[None]:
    yield
    with faulty.client() as client:
        client.delete("/sandbox/faults")


def test_429_burst_then_recovery(faulty: RunningSandbox) -> None:
    add_fault(faulty, platform="bigcommerce", kind="429", count=2, retry_after_seconds=2)
    with bc(faulty) as client:
        first, second, third = (client.get("/v3/customers") for _ in range(3))
    assert first.status_code == second.status_code == 429
    assert first.headers["x-rate-limit-time-reset-ms"] == "2000"
    assert first.headers["x-rate-limit-requests-left"] == "0"
    assert third.status_code == 200


def test_shopify_429_has_retry_after(faulty: RunningSandbox) -> None:
    add_fault(faulty, platform="shopify", kind="429", count=1)
    response = httpx.post(
        f"{faulty.url}/shopify/demo-shop.myshopify.com/admin/api/2026-10/graphql.json",
        json={"query": "{ shop { name } }"},
    )
    assert response.status_code == 429 and float(response.headers["retry-after"]) > 0


def test_5xx(faulty: RunningSandbox) -> None:
    add_fault(faulty, platform="bigcommerce", kind="5xx", count=1, status=502)
    with bc(faulty) as client:
        assert client.get("/v2/orders").status_code == 502
        assert client.get("/v2/orders").status_code == 200


def test_slow_response_beyond_client_timeout(faulty: RunningSandbox) -> None:
    add_fault(faulty, platform="bigcommerce", kind="slow", count=1, delay_seconds=1.0)
    with bc(faulty, timeout=0.3) as client, pytest.raises(httpx.ReadTimeout):
        client.get("/v3/customers")


def test_truncated_json_body(faulty: RunningSandbox) -> None:
    add_fault(
        faulty, platform="bigcommerce", kind="truncate", count=1, path_contains="/v3/customers"
    )
    with bc(faulty) as client:
        response = client.get("/v3/customers")
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


def test_connection_dropped_mid_body(faulty: RunningSandbox) -> None:
    add_fault(faulty, platform="bigcommerce", kind="drop", count=1)
    with bc(faulty) as client, pytest.raises(httpx.RemoteProtocolError):
        client.get("/v3/customers")
    with bc(faulty) as client:
        assert client.get("/v3/customers").status_code == 200


def test_rate_faults_are_probabilistic_and_admin_is_never_faulted(faulty: RunningSandbox) -> None:
    add_fault(faulty, platform="bigcommerce", kind="5xx", rate=0.5)
    with bc(faulty) as client:
        statuses = [client.get("/v3/hooks").status_code for _ in range(40)]
    assert 5 < statuses.count(503) < 35 and statuses.count(200) > 5
    with faulty.client() as client:
        assert client.get("/sandbox/state").status_code == 200
        assert len(client.get("/sandbox/faults").json()["faults"]) == 1


def test_bad_fault_spec_is_refused(faulty: RunningSandbox) -> None:
    with faulty.client() as client:
        spec = {"platform": "bigcommerce", "kind": "explode", "count": 1}
        assert client.post("/sandbox/faults", json=spec).status_code == 422


def _install(sandbox: RunningSandbox, shop: str) -> str:
    config = sandbox.state.config
    with sandbox.client() as client:
        approved = client.post(
            f"/shopify/{shop}/admin/oauth/authorize",
            data={
                "client_id": config.shopify_client_id,
                "scope": "read_customers,read_orders",
                "redirect_uri": "https://app.example/cb",
                "state": "s",
            },
        )
        code = dict(httpx.URL(approved.headers["location"]).params)["code"]
        tokens = client.post(
            f"/shopify/{shop}/admin/oauth/access_token",
            data={
                "client_id": config.shopify_client_id,
                "client_secret": config.shopify_client_secret,
                "code": code,
                "expiring": "1",
            },
        ).json()
    return tokens["access_token"]


@pytest.mark.parametrize(
    "kind,status,error_code",
    [("bulk_fail", "FAILED", "INTERNAL_SERVER_ERROR"), ("bulk_stuck", "RUNNING", None)],
)
def test_bulk_faults(
    faulty: RunningSandbox, kind: str, status: str, error_code: str | None
) -> None:
    shop = f"{faulty.unique('bulk-')}.myshopify.com"
    with faulty.client() as client:
        client.post("/sandbox/shopify/shops", json={"shop": shop, "customers": 30, "orders": 0})
    token = _install(faulty, shop)
    add_fault(faulty, platform="shopify", kind=kind, count=1)
    url = f"{faulty.url}/shopify/{shop}/admin/api/2026-10/graphql.json"
    headers = {"X-Shopify-Access-Token": token}
    started = httpx.post(
        url,
        headers=headers,
        json={
            "query": """mutation {
        bulkOperationRunQuery(query: "{ customers { edges { node { id } } } }") {
        bulkOperation { id } userErrors { message } } }"""
        },
    ).json()
    operation_id = started["data"]["bulkOperationRunQuery"]["bulkOperation"]["id"]
    time.sleep(0.6)
    node = httpx.post(
        url,
        headers=headers,
        json={
            "query": """query($id: ID!) {
        bulkOperation(id: $id) { status errorCode url partialDataUrl } }""",
            "variables": {"id": operation_id},
        },
    ).json()
    node = node["data"]["bulkOperation"]
    assert node["status"] == status and node["errorCode"] == error_code and node["url"] is None
    if kind == "bulk_fail":
        partial = httpx.get(node["partialDataUrl"]).text.splitlines()
        assert len(partial) == 15


def test_time_factor_expires_tokens_and_resets_quota_windows() -> None:
    config = SandboxConfig(customers=5, orders=0, seed=5, time_factor=3600.0)
    with running_sandbox(config) as fast:
        token = _install(fast, "demo-shop.myshopify.com")
        url = f"{fast.url}/shopify/demo-shop.myshopify.com/admin/api/2026-10/graphql.json"
        query = {"query": "{ shop { name } }"}
        assert (
            httpx.post(url, json=query, headers={"X-Shopify-Access-Token": token}).status_code
            == 200
        )
        time.sleep(1.1)  # an hour of sandbox time
        assert (
            httpx.post(url, json=query, headers={"X-Shopify-Access-Token": token}).status_code
            == 401
        )
        with bc(fast) as client:
            window = client.get("/v3/hooks").headers["x-rate-limit-time-window-ms"]
        assert int(window) < 30_000 / 1000


def test_state_document_contract(faulty: RunningSandbox) -> None:
    with faulty.client() as client:
        state = client.get("/sandbox/state").json()
    assert set(state) >= {"shopify", "bigcommerce", "settings"}
    shops = [s["shop"] for s in state["shopify"]["shops"]]
    assert "demo-shop.myshopify.com" in shops
    assert state["shopify"]["client_id"] and state["shopify"]["client_secret"]
    assert state["bigcommerce"]["stores"][0]["store_hash"] == "demo01"
    account = state["bigcommerce"]["accounts"][0]
    assert account["access_token"] and "store_v2_orders" in account["scopes"]
    assert state["settings"]["ATHOS_SHOPIFY_BASE_URL"] == f"{faulty.url}/shopify/{{shop}}"
    assert state["settings"]["ATHOS_BIGCOMMERCE_BASE_URL"] == f"{faulty.url}/bigcommerce"


def statuses(sandbox: RunningSandbox, count: int, path: str = "/v3/hooks") -> list[int]:
    with bc(sandbox) as client:
        return [client.get(path).status_code for _ in range(count)]


def test_schedule_after_lets_the_first_requests_through(faulty: RunningSandbox) -> None:
    fault = add_fault(faulty, platform="bigcommerce", kind="5xx", after=3, count=2)
    assert fault["after"] == 3
    assert statuses(faulty, 7) == [200, 200, 200, 503, 503, 200, 200]


def test_schedule_every_nth_request(faulty: RunningSandbox) -> None:
    add_fault(faulty, platform="bigcommerce", kind="5xx", every=3, status=500)
    assert statuses(faulty, 9) == [200, 200, 500] * 3
    with faulty.client() as client:
        [listed] = client.get("/sandbox/faults").json()["faults"]
    assert listed["seen"] == 9 and listed["fired"] == 3


def test_schedule_after_and_every_together_and_only_matching_paths_count(
    faulty: RunningSandbox,
) -> None:
    add_fault(
        faulty, platform="bigcommerce", kind="429", after=1, every=2, path_contains="/v2/orders"
    )
    with bc(faulty) as client:
        seen = []
        for _ in range(5):
            assert client.get("/v3/hooks").status_code == 200  # not matching: not counted
            seen.append(client.get("/v2/orders").status_code)
    assert seen == [200, 200, 429, 200, 429]


def test_schedule_for_seconds_then_the_fault_retires(faulty: RunningSandbox) -> None:
    add_fault(faulty, platform="bigcommerce", kind="5xx", for_seconds=0.5)
    assert set(statuses(faulty, 3)) == {503}
    time.sleep(0.6)
    assert statuses(faulty, 2) == [200, 200]
    with faulty.client() as client:
        assert client.get("/sandbox/faults").json()["faults"] == []


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"rate": 0.5, "every": 2},
        {"every": 0},
        {"count": 1, "after": -1},
        {"for_seconds": 0},
        {"every": "often"},
    ],
)
def test_bad_schedules_are_refused(faulty: RunningSandbox, spec: dict[str, object]) -> None:
    with faulty.client() as client:
        response = client.post(
            "/sandbox/faults", json={"platform": "bigcommerce", "kind": "5xx", **spec}
        )
    assert response.status_code == 422, (spec, response.text)


def test_injected_429_reports_the_quota_of_the_stores_plan(faulty: RunningSandbox) -> None:
    with faulty.client() as client:
        client.post(
            "/sandbox/bigcommerce/stores",
            json={"store_hash": "pro429", "customers": 1, "orders": 0, "plan": "pro"},
        ).raise_for_status()
        token = client.post(
            "/sandbox/bigcommerce/accounts",
            json={"store_hash": "pro429", "scopes": ["store_v2_customers_read_only"]},
        ).json()["access_token"]
    add_fault(faulty, platform="bigcommerce", kind="429", count=1, retry_after_seconds=3)
    response = httpx.get(
        f"{faulty.url}/bigcommerce/stores/pro429/v3/customers", headers={"X-Auth-Token": token}
    )
    assert response.status_code == 429
    assert response.headers["x-rate-limit-requests-quota"] == "450"
    assert response.headers["x-rate-limit-requests-left"] == "0"
    assert response.headers["x-rate-limit-time-reset-ms"] == "3000"
    assert response.headers["x-rate-limit-time-window-ms"] == "30000"
    assert response.headers["x-retry-after"] == "3"


def get_state_from(app: object, client_address: tuple[str, int]) -> httpx.Response:
    """GET /sandbox/state through the whole ASGI app as if from this peer (no network)."""

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=client_address)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
            return await client.get("/sandbox/state")

    return asyncio.run(get())


def test_non_loopback_clients_are_refused_by_the_middleware() -> None:
    app = create_sandbox_app(SandboxConfig(customers=1, orders=0, seed=5))
    for remote in (("10.1.2.3", 1234), ("192.168.1.20", 80), ("2001:db8::1", 1)):
        refused = get_state_from(app, remote)
        assert refused.status_code == 403, remote
        assert "--allow-remote" in refused.json()["detail"]
        assert "client_secret" not in refused.text
    assert get_state_from(app, ("127.0.0.1", 1234)).status_code == 200
    assert get_state_from(app, ("::1", 1234)).status_code == 200
    remote_ok = create_sandbox_app(SandboxConfig(customers=1, orders=0, seed=5, allow_remote=True))
    assert get_state_from(remote_ok, ("10.1.2.3", 1234)).status_code == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "sandbox.example.com"])
def test_the_command_refuses_a_non_loopback_host_without_allow_remote(host: str) -> None:
    result = CliRunner().invoke(cli_app, ["sandbox", "--host", host, "--port", "1"])
    assert result.exit_code == 2, result.output
    assert "--allow-remote" in result.output


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_hosts_are_loopback(host: str) -> None:
    assert is_loopback_host(host)
