"""Our own limits: per-key rates (429 + Retry-After), body sizes (413), outgoing timeouts."""

from __future__ import annotations

import ast
from pathlib import Path

import httpx
from observability_support import settings_changed

from athos_identity.kit.ratelimit import TokenBuckets
from support import TenantKeys, create_key

LOOKUP = {"identifiers": [{"type": "email", "value": "a@example.com"}]}


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=2.0, burst=3.0, clock=lambda: now[0])
    assert [buckets.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("k") == 0.5  # a token comes back in half a second
    assert buckets.take("other") == 0.0  # keys are independent
    now[0] = 0.5
    assert buckets.take("k") == 0.0
    assert buckets.take("k") > 0


async def test_lookup_rate_limit_is_per_key_with_retry_after(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    first = await create_key(tenant.tenant_id, "lookup")
    second = await create_key(tenant.tenant_id, "lookup")
    with settings_changed(rate_limit_lookup_per_second=1.0, rate_limit_lookup_burst=2.0):
        statuses = []
        for _ in range(3):
            response = await client.post(
                "/v1/identity/lookup", json=LOOKUP, headers={"Authorization": f"Bearer {first}"}
            )
            statuses.append(response.status_code)
        assert statuses == [200, 200, 429]
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"] == "1"
        assert response.json()["type"] == "/problems/rate-limited"
        # Another key of the same tenant has its own bucket; admin calls have theirs.
        other = await client.post(
            "/v1/identity/lookup", json=LOOKUP, headers={"Authorization": f"Bearer {second}"}
        )
        assert other.status_code == 200
        assert (await client.get("/v1/keys", headers=tenant.admin)).status_code == 200


async def test_admin_rate_limit(client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    with settings_changed(rate_limit_admin_per_second=0.5, rate_limit_admin_burst=1.0):
        assert (await client.get("/v1/keys", headers=tenant.admin)).status_code == 200
        limited = await client.get("/v1/keys", headers=tenant.admin)
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "2"
    with settings_changed(rate_limit_admin_per_second=0.0):  # 0 = off
        for _ in range(5):
            assert (await client.get("/v1/keys", headers=tenant.admin)).status_code == 200


async def test_body_over_the_limit_is_413_before_parsing(
    app: object, client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    from athos_identity.app import create_app

    with settings_changed(max_body_bytes=1000):
        small = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app()), base_url="http://testserver"
        )
        async with small:
            big = b'{"identifiers": [' + b" " * 2000 + b"]}"
            response = await small.post(
                "/v1/identity/lookup",
                content=big,
                headers={**tenant.admin, "Content-Type": "application/json"},
            )
            assert response.status_code == 413
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["type"] == "/problems/payload-too-large"
            assert response.headers["x-request-id"]

            async def chunks():  # no Content-Length: counted as it streams in
                for _ in range(5):
                    yield b" " * 400

            streamed = await small.post(
                "/v1/identity/lookup",
                content=chunks(),
                headers={**tenant.admin, "Content-Type": "application/json"},
            )
            assert streamed.status_code == 413
            ok = await small.post("/v1/identity/lookup", json=LOOKUP, headers=tenant.admin)
            assert ok.status_code == 200


async def test_the_openapi_document_names_the_limits_wherever_they_apply(
    client: httpx.AsyncClient,
) -> None:
    """Clients generated from /openapi.json must expect 429 (per-key rate limit) from every
    operation behind an API key, and 413 (body limit) from every POST, PUT and PATCH: both
    are sent before any route runs, so no route declares them itself."""
    schema = (await client.get("/openapi.json")).json()
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    missing = []
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            expected = set()
            if operation.get("security"):
                expected |= {"401", "429"}
            if method in ("post", "put", "patch") or "requestBody" in operation:
                expected.add("413")
            for code in sorted(expected):
                response = operation["responses"].get(code)
                if response is None or response.get("content") != problem:
                    missing.append(f"{method.upper()} {path}: {code}")
                elif code == "429" and "Retry-After" not in response.get("headers", {}):
                    missing.append(f"{method.upper()} {path}: 429 without Retry-After")
    assert missing == []
    operations = [op for item in schema["paths"].values() for op in item.values()]
    assert sum(1 for op in operations if op.get("security")) >= 20, "the walk saw the API"
    assert any("requestBody" in op for op in operations)


def test_every_outgoing_http_client_has_an_explicit_timeout() -> None:
    """httpx's default is 5 s for everything; we want each call site to choose, and never
    None (wait forever)."""
    root = Path(__file__).resolve().parents[2] / "src" / "athos_identity"
    missing = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            if name in {"httpx.AsyncClient", "httpx.Client"} or name.startswith(
                ("httpx.get", "httpx.post", "httpx.request", "httpx.stream")
            ):
                timeout = next((k for k in node.keywords if k.arg == "timeout"), None)
                if timeout is None or ast.unparse(timeout.value) == "None":
                    missing.append(f"{path.relative_to(root)}:{node.lineno} {name}")
    assert missing == []
