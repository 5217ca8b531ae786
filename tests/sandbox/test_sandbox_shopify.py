"""Shopify over real HTTP: OAuth + refresh, GraphQL paging, cost throttling, bulk, webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from sandbox_harness import RunningSandbox, WebhookSink
from shopify_app import verify_webhook_req

ALL_SCOPES = "read_customers,read_orders,read_all_orders"


def new_shop(sandbox: RunningSandbox, **options: Any) -> str:
    domain = f"{sandbox.unique('shop-')}.myshopify.com"
    with sandbox.client() as client:
        client.post("/sandbox/shopify/shops", json={"shop": domain, **options}).raise_for_status()
    return domain


def credentials(sandbox: RunningSandbox) -> tuple[str, str]:
    with sandbox.client() as client:
        state = client.get("/sandbox/state").json()["shopify"]
    return state["client_id"], state["client_secret"]


def authorize(sandbox: RunningSandbox, shop: str, scope: str = ALL_SCOPES) -> dict[str, str]:
    """Drive the approval page like a browser: GET the form, POST it, follow nothing."""
    client_id, _ = credentials(sandbox)
    with sandbox.client() as client:
        page = client.get(
            f"/shopify/{shop}/admin/oauth/authorize",
            params={
                "client_id": client_id,
                "scope": scope,
                "state": "nonce-1",
                "redirect_uri": "https://app.example/callback",
            },
        )
        assert page.status_code == 200 and "Install app" in page.text and "<form" in page.text
        approved = client.post(
            f"/shopify/{shop}/admin/oauth/authorize",
            data={
                "client_id": client_id,
                "scope": scope,
                "state": "nonce-1",
                "redirect_uri": "https://app.example/callback",
                "decision": "approve",
            },
        )
    assert approved.status_code == 302
    location = urlsplit(approved.headers["location"])
    assert location.netloc == "app.example"
    return dict(parse_qsl(location.query))


def exchange(sandbox: RunningSandbox, shop: str, code: str) -> httpx.Response:
    client_id, secret = credentials(sandbox)
    with sandbox.client() as client:
        return client.post(
            f"/shopify/{shop}/admin/oauth/access_token",
            data={"client_id": client_id, "client_secret": secret, "code": code, "expiring": "1"},
        )


def install(sandbox: RunningSandbox, shop: str, scope: str = ALL_SCOPES) -> dict[str, Any]:
    callback = authorize(sandbox, shop, scope)
    response = exchange(sandbox, shop, callback["code"])
    assert response.status_code == 200, response.text
    return response.json()


def graphql(
    sandbox: RunningSandbox,
    shop: str,
    token: str,
    query: str,
    variables: dict[str, Any] | None = None,
) -> httpx.Response:
    with sandbox.client() as client:
        return client.post(
            f"/shopify/{shop}/admin/api/2026-10/graphql.json",
            json={"query": query, "variables": variables or {}},
            headers={"X-Shopify-Access-Token": token},
        )


def test_callback_is_signed_like_shopify(sandbox: RunningSandbox) -> None:
    shop = new_shop(sandbox, customers=1, orders=0)
    callback = authorize(sandbox, shop)
    _, secret = credentials(sandbox)
    received = callback.pop("hmac")
    message = "&".join(f"{k}={v}" for k, v in sorted(callback.items()))
    expected = hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
    assert hmac.compare_digest(received, expected)
    assert set(callback) == {"code", "host", "shop", "state", "timestamp"}
    assert callback["shop"] == shop and callback["state"] == "nonce-1"


def test_code_once_refresh_rotates_and_reuse_is_invalid_grant(sandbox: RunningSandbox) -> None:
    shop = new_shop(sandbox, customers=1, orders=0)
    callback = authorize(sandbox, shop)
    first = exchange(sandbox, shop, callback["code"])
    body = first.json()
    assert body["expires_in"] == 3600 and body["refresh_token_expires_in"] == 90 * 86400
    assert set(body["scope"].split(",")) == set(ALL_SCOPES.split(","))
    assert body["access_token"].startswith("shpat_")
    again = exchange(sandbox, shop, callback["code"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    client_id, secret = credentials(sandbox)
    with sandbox.client() as client:
        refreshed = client.post(
            f"/shopify/{shop}/admin/oauth/access_token",
            json={
                "client_id": client_id,
                "client_secret": secret,
                "grant_type": "refresh_token",
                "refresh_token": body["refresh_token"],
            },
        )
        assert refreshed.status_code == 200
        assert refreshed.json()["refresh_token"] != body["refresh_token"]
        reused = client.post(
            f"/shopify/{shop}/admin/oauth/access_token",
            json={
                "client_id": client_id,
                "client_secret": secret,
                "grant_type": "refresh_token",
                "refresh_token": body["refresh_token"],
            },
        )
        assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    new_token = refreshed.json()["access_token"]
    assert graphql(sandbox, shop, new_token, "{ shop { name } }").status_code == 200
    # Uninstalling kills every token.
    mutation = "mutation { appUninstall { userErrors { message } } }"
    uninstalled = graphql(sandbox, shop, new_token, mutation)
    assert uninstalled.status_code == 200
    assert graphql(sandbox, shop, new_token, "{ shop { name } }").status_code == 401


def test_withheld_scopes_show_in_granted_scope(sandbox: RunningSandbox) -> None:
    shop = new_shop(sandbox, customers=1, orders=0, withhold_scopes=["read_orders"])
    tokens = install(sandbox, shop, "read_customers,read_orders")
    assert tokens["scope"] == "read_customers"
    query = "{ orders(first: 1) { nodes { id } } }"
    denied = graphql(sandbox, shop, tokens["access_token"], query)
    assert denied.json()["errors"][0]["extensions"]["code"] == "ACCESS_DENIED"


def test_customers_page_to_the_end_sorted_by_updated_at(sandbox: RunningSandbox) -> None:
    shop = new_shop(sandbox, customers=230, orders=0, plan="unlimited")
    token = install(sandbox, shop)["access_token"]
    query = """query($after: String) {
      customers(first: 100, after: $after, sortKey: UPDATED_AT) {
        pageInfo { hasNextPage endCursor }
        nodes { id updatedAt defaultEmailAddress { emailAddress }
                defaultPhoneNumber { phoneNumber } defaultAddress { phone } } } }"""
    seen, after, pages = [], None, 0
    while True:
        body = graphql(sandbox, shop, token, query, {"after": after}).json()
        connection = body["data"]["customers"]
        seen += connection["nodes"]
        pages += 1
        cost = body["extensions"]["cost"]
        assert cost["requestedQueryCost"] == 2 + 100 * 4
        assert set(cost["throttleStatus"]) == {
            "maximumAvailable",
            "currentlyAvailable",
            "restoreRate",
        }
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert pages == 3 and len({n["id"] for n in seen}) == 230
    assert seen[0]["id"].startswith("gid://shopify/Customer/")
    stamps = [n["updatedAt"] for n in seen]
    assert stamps == sorted(stamps)
    since = stamps[200]
    tail = graphql(
        sandbox,
        shop,
        token,
        """query($q: String) {
      customers(first: 250, sortKey: UPDATED_AT, query: $q) { nodes { id updatedAt } } }""",
        {"q": f"updated_at:>='{since}'"},
    ).json()["data"]["customers"]["nodes"]
    assert all(n["updatedAt"] >= since for n in tail) and len(tail) >= 30
    count = graphql(sandbox, shop, token, "{ customersCount { count precision } }").json()
    assert count["data"]["customersCount"] == {"count": 230, "precision": "EXACT"}


def test_unknown_field_and_missing_token(sandbox: RunningSandbox) -> None:
    shop = new_shop(sandbox, customers=1, orders=0)
    token = install(sandbox, shop)["access_token"]
    response = graphql(sandbox, shop, token, "{ customers(first: 1) { nodes { shoeSize } } }")
    assert response.status_code == 200
    error = response.json()["errors"][0]
    assert error["message"] == "Field 'shoeSize' doesn't exist on type 'Customer'"
    assert error["extensions"]["code"] == "undefinedField"
    unauthorized = graphql(sandbox, shop, "shpat_wrong", "{ shop { name } }")
    assert unauthorized.status_code == 401 and "Invalid API key" in unauthorized.json()["errors"]


def test_orders_older_than_60_days_need_read_all_orders(sandbox: RunningSandbox) -> None:
    shop = new_shop(sandbox, customers=20, orders=400, plan="unlimited")
    recent = install(sandbox, shop, "read_customers,read_orders")["access_token"]
    count_query = "{ ordersCount(limit: null) { count } }"
    visible = graphql(sandbox, shop, recent, count_query).json()["data"]["ordersCount"]["count"]
    everything = install(sandbox, shop, ALL_SCOPES)["access_token"]
    total = graphql(sandbox, shop, everything, count_query).json()["data"]["ordersCount"]["count"]
    assert total == 400 and 0 < visible < 100
    orders = graphql(
        sandbox,
        shop,
        everything,
        """{ orders(first: 5, sortKey: UPDATED_AT) {
      nodes { id email phone customer { id } createdAt updatedAt currencyCode
              totalPriceSet { shopMoney { amount currencyCode } } displayFinancialStatus
              lineItems(first: 5) { nodes { id quantity sku product { id } variant { id }
                originalUnitPriceSet { shopMoney { amount } } } } } } }""",
    )
    nodes = orders.json()["data"]["orders"]["nodes"]
    assert len(nodes) == 5 and nodes[0]["lineItems"]["nodes"][0]["sku"].startswith("SKU-")


def test_cost_throttling_returns_throttled_with_http_200(sandbox: RunningSandbox) -> None:
    shop = new_shop(sandbox, customers=260, orders=0, plan="basic")
    token = install(sandbox, shop)["access_token"]
    query = (
        "{ "
        + " ".join(f"c{i}: customers(first: 249) {{ nodes {{ id }} }}" for i in range(3))
        + " }"
    )  # 3 x (2 + 249) = 753 points
    outcomes = [graphql(sandbox, shop, token, query) for _ in range(4)]
    assert all(r.status_code == 200 for r in outcomes), "THROTTLED comes with HTTP 200"
    first = outcomes[0].json()["extensions"]["cost"]
    assert first["requestedQueryCost"] == first["actualQueryCost"] == 753
    throttled = [r.json() for r in outcomes if r.json().get("errors")]
    assert throttled, "a 2000-point bucket cannot pay 4 x 753 at once"
    error = throttled[0]["errors"][0]
    assert error["message"] == "Throttled" and error["extensions"]["code"] == "THROTTLED"
    assert throttled[0].get("data") is None
    status = throttled[0]["extensions"]["cost"]["throttleStatus"]
    assert status["maximumAvailable"] == 2000 and status["restoreRate"] == 100
    assert status["currentlyAvailable"] < 753


def test_actual_cost_refunds_what_was_not_returned(sandbox: RunningSandbox) -> None:
    shop = new_shop(sandbox, customers=10, orders=0, plan="basic")
    token = install(sandbox, shop)["access_token"]
    body = graphql(sandbox, shop, token, "{ customers(first: 249) { nodes { id } } }").json()
    cost = body["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 251 and cost["actualQueryCost"] == 12
    expensive = "{ orders(first: 250) { nodes { id lineItems(first: 10) { nodes { id } } } } }"
    too_big = graphql(sandbox, shop, token, expensive)
    assert too_big.json()["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"


def run_bulk(sandbox: RunningSandbox, shop: str, token: str, inner: str) -> dict[str, Any]:
    mutation = """mutation($q: String!) { bulkOperationRunQuery(query: $q) {
        bulkOperation { id status } userErrors { field message } } }"""
    started = graphql(sandbox, shop, token, mutation, {"q": inner}).json()
    payload = started["data"]["bulkOperationRunQuery"]
    assert payload["userErrors"] == [] and payload["bulkOperation"]["status"] == "CREATED"
    operation_id = payload["bulkOperation"]["id"]
    statuses = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        node = graphql(
            sandbox,
            shop,
            token,
            """query($id: ID!) { bulkOperation(id: $id) {
            id status errorCode objectCount rootObjectCount url partialDataUrl } }""",
            {"id": operation_id},
        ).json()["data"]["bulkOperation"]
        statuses.append(node["status"])
        if node["status"] in ("COMPLETED", "FAILED"):
            node["seen"] = statuses
            return node
        time.sleep(0.05)
    raise AssertionError(f"bulk operation stuck: {statuses[-3:]}")


def test_bulk_export_streams_children_not_after_their_parents(sandbox: RunningSandbox) -> None:
    shop = new_shop(sandbox, customers=30, orders=60, plan="unlimited")
    token = install(sandbox, shop)["access_token"]
    result = run_bulk(
        sandbox,
        shop,
        token,
        """{ orders { edges { node { id email phone
        customer { id } lineItems { edges { node { id quantity sku } } } } } } }""",
    )
    assert result["status"] == "COMPLETED" and "RUNNING" in result["seen"]
    lines = [json.loads(line) for line in httpx.get(result["url"]).text.splitlines()]
    parents = [line for line in lines if "__parentId" not in line]
    children = [line for line in lines if "__parentId" in line]
    assert len(parents) == 60 == int(result["rootObjectCount"])
    assert len(lines) == int(result["objectCount"])
    position = {line["id"]: index for index, line in enumerate(lines)}
    assert all(c["__parentId"] in position for c in children)
    assert any(position[c["id"]] < position[c["__parentId"]] for c in children), (
        "some children must come before their parent"
    )


def test_webhooks_are_signed_and_verify_with_shopify_app(
    sandbox: RunningSandbox, webhook_sink: WebhookSink
) -> None:
    shop = new_shop(sandbox, customers=5, orders=5)
    token = install(sandbox, shop)["access_token"]
    for topic in ("CUSTOMERS_UPDATE", "ORDERS_CREATE", "APP_UNINSTALLED"):
        created = graphql(
            sandbox,
            shop,
            token,
            """mutation($topic: WebhookSubscriptionTopic!,
            $url: URL!) { webhookSubscriptionCreate(topic: $topic,
            webhookSubscription: {callbackUrl: $url, format: JSON}) {
            webhookSubscription { id } userErrors { message } } }""",
            {"topic": topic, "url": f"{webhook_sink.url}/shopify"},
        ).json()
        assert created["data"]["webhookSubscriptionCreate"]["userErrors"] == []
    client_id, secret = credentials(sandbox)
    with sandbox.client() as client:
        base = f"/sandbox/shopify/shops/{shop}"
        customer_id = 7_000_000_000_000 + 2
        client.patch(f"{base}/customers/{customer_id}", json={"email": "Ünï@Example.com"})
        client.post(f"{base}/orders", json={"line_count": 2, "email": "g@example.com"})
        for topic in ("customers/data_request", "customers/redact", "shop/redact"):
            sent = client.post(
                f"{base}/compliance",
                json={
                    "topic": topic,
                    "url": f"{webhook_sink.url}/compliance",
                    "customer_id": customer_id,
                },
            )
            assert sent.status_code == 202, sent.text
        client.post(f"{base}/uninstall").raise_for_status()
    received = webhook_sink.wait_for(6)
    topics = sorted(r.headers["X-Shopify-Topic"] for r in received)
    assert topics == sorted(
        [
            "customers/update",
            "orders/create",
            "customers/data_request",
            "customers/redact",
            "shop/redact",
            "app/uninstalled",
        ]
    )
    app_config = {"client_id": client_id, "client_secret": secret}
    for request in received:
        result = verify_webhook_req(
            {"method": "POST", "headers": request.headers, "body": request.body.decode()},
            app_config,
        )
        assert result.ok, result.log
        assert request.headers["X-Shopify-Webhook-Id"] and request.headers["X-Shopify-Triggered-At"]
    tampered = verify_webhook_req(
        {"method": "POST", "headers": received[0].headers, "body": received[0].body.decode() + " "},
        app_config,
    )
    assert not tampered.ok
    redact = next(r.json() for r in received if r.headers["X-Shopify-Topic"] == "customers/redact")
    assert set(redact) == {"shop_id", "shop_domain", "customer", "orders_to_redact"}
    assert redact["customer"]["id"] == customer_id


def approve(sandbox: RunningSandbox, shop: str, **params: str) -> str:
    """POST the approval form with these parameters; the code of the signed callback."""
    client_id, _ = credentials(sandbox)
    with sandbox.client() as client:
        approved = client.post(
            f"/shopify/{shop}/admin/oauth/authorize",
            data={
                "client_id": client_id,
                "state": "n",
                "redirect_uri": "https://app.example/cb",
                **params,
            },
        )
    assert approved.status_code == 302, approved.text
    return dict(parse_qsl(urlsplit(approved.headers["location"]).query))["code"]


def test_each_code_reports_the_scopes_of_its_own_approval(sandbox: RunningSandbox) -> None:
    shop = new_shop(sandbox, customers=1, orders=0)
    earlier = approve(sandbox, shop, scope="read_customers")
    later = approve(sandbox, shop, scope="read_customers,read_orders,read_all_orders")
    assert exchange(sandbox, shop, earlier).json()["scope"] == "read_customers"
    assert set(exchange(sandbox, shop, later).json()["scope"].split(",")) == {
        "read_customers",
        "read_orders",
        "read_all_orders",
    }


REVOKE = """mutation($scopes: [String!]!) { appRevokeAccessScopes(scopes: $scopes) {
  revoked { handle } userErrors { field message code } } }"""
GRANTED = "{ currentAppInstallation { accessScopes { handle } } }"


def revoke(sandbox: RunningSandbox, shop: str, token: str, scopes: list[str]) -> dict[str, Any]:
    response = graphql(sandbox, shop, token, REVOKE, {"scopes": scopes})
    assert response.status_code == 200 and "errors" not in response.json(), response.text
    return response.json()["data"]["appRevokeAccessScopes"]


def granted(sandbox: RunningSandbox, shop: str, token: str) -> set[str]:
    scopes = graphql(sandbox, shop, token, GRANTED).json()["data"]["currentAppInstallation"]
    return {s["handle"] for s in scopes["accessScopes"]}


def strict_shop(sandbox: RunningSandbox) -> str:
    return new_shop(sandbox, customers=1, orders=0)  # as Shopify: required scopes stay


def test_required_scopes_cannot_be_revoked_optional_ones_can(sandbox: RunningSandbox) -> None:
    shop = strict_shop(sandbox)
    code = approve(
        sandbox,
        shop,
        scope="read_products",
        optional_scopes="write_customers,read_orders,read_themes",
    )
    tokens = exchange(sandbox, shop, code).json()
    token = tokens["access_token"]
    # read_themes is not declared optional by the sandbox app: not granted
    assert set(tokens["scope"].split(",")) == {"read_products", "write_customers", "read_orders"}

    cases = [
        (["read_products"], "CANNOT_REVOKE_REQUIRED_SCOPES"),
        (["read_customers"], "CANNOT_REVOKE_IMPLIED_SCOPES"),  # comes with write_customers
        (["read_themes"], "CANNOT_REVOKE_UNDECLARED_SCOPES"),
        (["not a scope"], "UNKNOWN_SCOPES"),
        (["read_orders", "read_products"], "CANNOT_REVOKE_REQUIRED_SCOPES"),
    ]
    for scopes, code in cases:
        refused = revoke(sandbox, shop, token, scopes)
        assert refused["revoked"] is None, scopes
        assert [e["code"] for e in refused["userErrors"]] == [code], (scopes, refused)
        assert refused["userErrors"][0]["field"] == ["scopes"]
    assert granted(sandbox, shop, token) == {"read_products", "write_customers", "read_orders"}, (
        "a refused revocation revokes nothing"
    )

    done = revoke(sandbox, shop, token, ["write_customers", "read_orders", "read_all_orders"])
    assert done["userErrors"] == []
    assert sorted(r["handle"] for r in done["revoked"]) == ["read_orders", "write_customers"]
    assert granted(sandbox, shop, token) == {"read_products"}
    denied = graphql(sandbox, shop, token, "{ customers(first: 1) { nodes { id } } }").json()
    assert denied["errors"][0]["extensions"]["code"] == "ACCESS_DENIED"


def test_scope_parameter_scopes_are_revocable_only_under_the_compatibility_switch(
    sandbox: RunningSandbox,
) -> None:
    lenient = new_shop(sandbox, customers=1, orders=0)
    with sandbox.client() as client:
        client.patch(
            f"/sandbox/shopify/shops/{lenient}", json={"required_scopes_revocable": True}
        ).raise_for_status()
    token = install(sandbox, lenient, "read_customers,read_orders")["access_token"]
    done = revoke(sandbox, lenient, token, ["read_customers", "read_orders"])
    assert done["userErrors"] == [] and len(done["revoked"]) == 2

    strict = strict_shop(sandbox)
    token = install(sandbox, strict, "read_customers,read_orders")["access_token"]
    refused = revoke(sandbox, strict, token, ["read_customers", "read_orders"])
    assert [e["code"] for e in refused["userErrors"]] == ["CANNOT_REVOKE_REQUIRED_SCOPES"]
