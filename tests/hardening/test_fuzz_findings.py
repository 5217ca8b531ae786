"""What the API fuzzing found, pinned by hand-written tests (each was a 500 or a lie of
the OpenAPI document before its fix)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from athos_identity.app import create_app

PROBLEM_JSON = "application/problem+json"


def _is_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    return dict(response.json())


async def _post(client: httpx.AsyncClient, path: str, headers: dict, body: object):
    # json.dumps keeps "\u0000" escaped: the NUL reaches the server as JSON, as a client sends it
    return await client.post(
        path, content=json.dumps(body), headers={**headers, "content-type": "application/json"}
    )


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/identity/records", {"records": [{"customer_id": "a\x00b"}]}, "customer_id"),
        ("/v1/identity/erase", {"customers": [{"customer_id": "a\x00"}]}, "customer_id"),
        ("/v1/keys", {"scopes": ["lookup"], "name": "sms\x00"}, "name"),
    ],
)
async def test_a_nul_character_is_a_422_naming_the_field_not_a_500(
    client: httpx.AsyncClient, tenant, path: str, body: object, field: str
) -> None:
    problem = _is_problem(await _post(client, path, tenant.admin, body), 422)
    assert field in problem["errors"][0]["field"]
    assert "\x00" not in json.dumps(problem, ensure_ascii=False)


async def test_a_nul_in_a_customer_id_path_is_a_422(client: httpx.AsyncClient, tenant) -> None:
    _is_problem(await client.get("/v1/customers/a%00b/orders", headers=tenant.admin), 422)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v1/identity/records",
            {"records": [{"customer_id": "1", "phones": ["2125550100"], "default_region": "AA"}]},
        ),
        ("/v1/identity/lookup", {"identifiers": [{"type": "phone", "value": "1", "region": "ZZ"}]}),
        ("/v1/connectors", {"platform": "bigcommerce", "name": "x", "store_country": "AA"}),
    ],
)
async def test_an_unknown_region_code_is_a_422_not_a_500(
    client: httpx.AsyncClient, tenant, path: str, body: object
) -> None:
    problem = _is_problem(await _post(client, path, tenant.admin, body), 422)
    assert "region" in problem["detail"] or "country" in problem["detail"]


async def test_a_known_region_code_is_still_accepted(client: httpx.AsyncClient, tenant) -> None:
    body = {"records": [{"customer_id": "1", "phones": ["2125550100"], "default_region": "US"}]}
    response = await _post(client, "/v1/identity/records", tenant.admin, body)
    assert response.status_code == 200, response.text
    assert response.json()["identifiers_stored"] == 1


async def test_405_allows_every_method_of_the_path(client: httpx.AsyncClient, tenant) -> None:
    """Starlette named only the first route matching the path (`Allow: POST` on /v1/keys)."""
    response = await client.put("/v1/keys", headers=tenant.admin)
    _is_problem(response, 405)
    assert response.headers["allow"] == "GET, POST"


def test_the_document_describes_error_bodies_as_problems() -> None:
    spec = create_app().openapi()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            for code, response in operation["responses"].items():
                if code[0] in "45":
                    assert list(response["content"]) == [PROBLEM_JSON], (method, path, code)
            if "requestBody" in operation:
                assert "400" in operation["responses"], (method, path)
