"""BigCommerce over real HTTP: paging to the end, 204, embedded lines, scopes, quota, hooks."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
from sandbox_harness import RunningSandbox, WebhookSink

from athos_identity.sandbox.bigcommerce.serialize import parse_date

RFC2822 = re.compile(r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000$")
QUOTA_HEADERS = (
    "x-rate-limit-requests-left",
    "x-rate-limit-time-reset-ms",
    "x-rate-limit-time-window-ms",
    "x-rate-limit-requests-quota",
)


def new_store(sandbox: RunningSandbox, **options: Any) -> tuple[str, str]:
    """A fresh store and a full-scope token for it."""
    store_hash = sandbox.unique("st")
    with sandbox.client() as client:
        client.post(
            "/sandbox/bigcommerce/stores", json={"store_hash": store_hash, **options}
        ).raise_for_status()
        account = client.post(
            "/sandbox/bigcommerce/accounts",
            json={
                "store_hash": store_hash,
                "scopes": ["store_v2_customers_read_only", "store_v2_orders_read_only"],
            },
        )
        account.raise_for_status()
    return store_hash, account.json()["access_token"]


def api(sandbox: RunningSandbox, store_hash: str, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{sandbox.url}/bigcommerce/stores/{store_hash}",
        headers={"X-Auth-Token": token, "Accept": "application/json"},
        timeout=10,
    )


def test_default_account_is_in_state_and_works(sandbox: RunningSandbox) -> None:
    with sandbox.client() as client:
        state = client.get("/sandbox/state").json()
    account = next(a for a in state["bigcommerce"]["accounts"] if a["store_hash"] == "demo01")
    assert "store_v2_customers" in account["scopes"]
    with api(sandbox, "demo01", account["access_token"]) as bc:
        response = bc.get("/v3/customers", params={"limit": 1})
    assert response.status_code == 200
    assert all(h in response.headers for h in QUOTA_HEADERS)


def test_customers_page_to_the_end_in_date_modified_order(sandbox: RunningSandbox) -> None:
    store_hash, token = new_store(sandbox, customers=620, orders=0, plan="unlimited")
    seen: list[dict[str, Any]] = []
    with api(sandbox, store_hash, token) as bc:
        page = 1
        while True:
            body = bc.get(
                "/v3/customers", params={"page": page, "limit": 250, "sort": "date_modified:asc"}
            ).json()
            seen += body["data"]
            pagination = body["meta"]["pagination"]
            assert pagination["total"] == 620 and pagination["per_page"] == 250
            if "next" not in pagination["links"]:
                break
            page += 1
        assert page == 3 and pagination["total_pages"] == 3
        beyond = bc.get("/v3/customers", params={"page": 4, "limit": 250})
        assert beyond.status_code == 200 and beyond.json()["data"] == []
    assert len({c["id"] for c in seen}) == 620
    stamps = [c["date_modified"] for c in seen]
    assert stamps == sorted(stamps) and stamps[0].endswith("Z")
    # date_modified:min resumes from a point in time (inclusive).
    cut = seen[400]["date_modified"]
    with api(sandbox, store_hash, token) as bc:
        tail = bc.get("/v3/customers", params={"date_modified:min": cut, "limit": 250}).json()
    assert tail["data"][0]["date_modified"] >= cut
    assert {c["id"] for c in seen[401:]} <= {c["id"] for c in tail["data"]}


def test_orders_v2_bare_arrays_rfc2822_and_204_past_the_end(sandbox: RunningSandbox) -> None:
    store_hash, token = new_store(sandbox, customers=50, orders=130, plan="unlimited")
    orders: list[dict[str, Any]] = []
    with api(sandbox, store_hash, token) as bc:
        page = 1
        while True:
            response = bc.get(
                "/v2/orders", params={"page": page, "limit": 50, "sort": "date_modified:asc"}
            )
            if response.status_code == 204:
                assert response.content == b""
                break
            assert isinstance(response.json(), list)
            orders += response.json()
            page += 1
        assert page == 4
        assert bc.get("/v2/orders/count").json()["count"] == 130
        since = orders[100]["date_modified"]
        later = bc.get("/v2/orders", params={"min_date_modified": since, "limit": 250}).json()
    assert len({o["id"] for o in orders}) == 130 and min(o["id"] for o in orders) == 100
    assert all(RFC2822.match(o["date_modified"]) for o in orders)
    stamps = [parse_date(o["date_modified"]) for o in orders]
    assert stamps == sorted(stamps)
    assert {o["id"] for o in orders[101:]} <= {o["id"] for o in later}
    assert any(o["customer_id"] == 0 for o in orders), "guest orders have customer_id 0"
    assert all("email" in o["billing_address"] for o in orders)


def test_embedded_lines_capped_at_50_with_a_warning(sandbox: RunningSandbox) -> None:
    store_hash, token = new_store(sandbox, customers=10, orders=0, plan="unlimited")
    with sandbox.client() as client:
        big = client.post(
            f"/sandbox/bigcommerce/stores/{store_hash}/orders",
            json={"line_count": 57, "email": "Big@Example.com"},
        ).json()
        small = client.post(
            f"/sandbox/bigcommerce/stores/{store_hash}/orders", json={"line_count": 3}
        ).json()
    with api(sandbox, store_hash, token) as bc:
        listed = bc.get("/v2/orders", params={"include": "consignments.line_items"}).json()
        by_id = {o["id"]: o for o in listed}
        shipping = by_id[big["id"]]["consignments"][0]["shipping"][0]
        assert len(shipping["line_items"]) == 50
        assert "only 50 are included" in shipping["__warning__"]["message"]
        small_shipping = by_id[small["id"]]["consignments"][0]["shipping"][0]
        assert len(small_shipping["line_items"]) == 3 and "__warning__" not in small_shipping
        first = bc.get(f"/v2/orders/{big['id']}/products", params={"limit": 50}).json()
        second = bc.get(f"/v2/orders/{big['id']}/products", params={"limit": 50, "page": 2})
        third = bc.get(f"/v2/orders/{big['id']}/products", params={"limit": 50, "page": 3})
    assert len(first) == 50 and len(second.json()) == 7 and third.status_code == 204


def test_scopes_403_and_unknown_token_401(sandbox: RunningSandbox) -> None:
    with sandbox.client() as client:
        limited = client.post(
            "/sandbox/bigcommerce/accounts",
            json={"store_hash": "demo01", "scopes": ["store_v2_customers_read_only"]},
        ).json()
    with api(sandbox, "demo01", limited["access_token"]) as bc:
        assert bc.get("/v3/customers", params={"limit": 1}).status_code == 200
        assert bc.get("/v3/hooks").status_code == 200, "hooks need no scope"
        orders = bc.get("/v2/orders", params={"limit": 1})
        assert orders.status_code == 403
        assert orders.json()[0]["message"] == (
            "You don't have a required scope to access the endpoint"
        )
        products = bc.get("/v3/catalog/products", params={"limit": 1})
        assert products.status_code == 403
        assert products.json()["title"] == "You don't have a required scope to access the endpoint"
        assert bc.get("/v3/themes").status_code == 403
        assert bc.get("/v2/pages").status_code == 403
        assert "x-rate-limit-requests-left" in orders.headers
    with api(sandbox, "demo01", "not-a-token") as bc:
        assert bc.get("/v3/hooks").status_code == 401
    with api(sandbox, "nosuchstore", limited["access_token"]) as bc:
        assert bc.get("/v3/hooks").status_code == 404


def test_quota_headers_count_down_then_429(sandbox: RunningSandbox) -> None:
    store_hash, token = new_store(sandbox, customers=5, orders=0, plan="standard")
    with api(sandbox, store_hash, token) as bc:
        lefts = []
        for _ in range(150):
            response = bc.get("/v3/hooks")
            assert response.status_code == 200
            lefts.append(int(response.headers["x-rate-limit-requests-left"]))
        refused = bc.get("/v3/hooks")
    assert lefts[0] == 149 and lefts[-1] == 0 and lefts == sorted(lefts, reverse=True)
    assert refused.status_code == 429
    assert refused.headers["x-rate-limit-requests-left"] == "0"
    assert refused.headers["x-rate-limit-requests-quota"] == "150"
    assert refused.headers["x-rate-limit-time-window-ms"] == "30000"
    assert 0 < int(refused.headers["x-rate-limit-time-reset-ms"]) <= 30000


def test_pro_plan_has_450(sandbox: RunningSandbox) -> None:
    store_hash, token = new_store(sandbox, customers=1, orders=0, plan="pro")
    with api(sandbox, store_hash, token) as bc:
        assert bc.get("/v3/hooks").headers["x-rate-limit-requests-quota"] == "450"


def test_hooks_deliver_ids_only_with_custom_headers(
    sandbox: RunningSandbox, webhook_sink: WebhookSink
) -> None:
    store_hash, token = new_store(sandbox, customers=20, orders=5, plan="unlimited")
    with api(sandbox, store_hash, token) as bc:
        for scope in ("store/customer/*", "store/order/*"):
            created = bc.post(
                "/v3/hooks",
                json={
                    "scope": scope,
                    "destination": f"{webhook_sink.url}/bc",
                    "is_active": True,
                    "headers": {"X-Connector-Secret": "s3cret"},
                },
            )
            assert created.status_code == 200, created.text
        assert len(bc.get("/v3/hooks").json()["data"]) == 2
    with sandbox.client() as client:
        base = f"/sandbox/bigcommerce/stores/{store_hash}"
        customer = client.post(f"{base}/customers", json={"email": "a@example.com"}).json()
        client.patch(f"{base}/customers/3", json={"phone": "+1 415 555 0100"}).raise_for_status()
        assert client.delete(f"{base}/customers/4").status_code == 204
        client.patch(f"{base}/orders/101", json={"financial_status": "REFUNDED"})
    received = webhook_sink.wait_for(4)
    scopes = sorted(r.json()["scope"] for r in received)
    assert scopes == [
        "store/customer/created",
        "store/customer/deleted",
        "store/customer/updated",
        "store/order/updated",
    ]
    created_hook = next(r.json() for r in received if r.json()["scope"].endswith("created"))
    assert created_hook["data"] == {"type": "customer", "id": customer["id"]}
    assert created_hook["producer"] == f"stores/{store_hash}"
    assert set(created_hook) == {"scope", "store_id", "data", "hash", "created_at", "producer"}
    assert all(r.headers["X-Connector-Secret"] == "s3cret" for r in received)
    with api(sandbox, store_hash, token) as bc:
        updated = bc.get("/v3/customers", params={"limit": 250}).json()["data"]
    # Both changed within a second or two: their relative order depends on the clock tick.
    assert {updated[-1]["id"], updated[-2]["id"]} == {customer["id"], 3}, "changed ones last"
    assert 4 not in {c["id"] for c in updated}


def test_quota_headers_on_401_404_and_unknown_routes(sandbox: RunningSandbox) -> None:
    store_hash, token = new_store(sandbox, customers=1, orders=0, plan="pro")
    with api(sandbox, store_hash, token) as bc:
        used = int(bc.get("/v3/hooks").headers["x-rate-limit-requests-left"])
        answers = [bc.get("/v2/orders/99999"), bc.get("/v3/no-such-resource")]
    with api(sandbox, store_hash, "not-a-token") as bc:
        answers.append(bc.get("/v3/customers"))
    with api(sandbox, "nosuchstore", token) as bc:
        unknown_store = bc.get("/v3/customers")
    assert [a.status_code for a in answers] == [404, 404, 401]
    for answer in answers:
        assert all(h in answer.headers for h in QUOTA_HEADERS), answer.headers
        assert answer.headers["x-rate-limit-requests-quota"] == "450"
    assert int(answers[-1].headers["x-rate-limit-requests-left"]) == used - 1, (
        "a refused token is not counted; the 404 of a valid one is"
    )
    assert unknown_store.status_code == 404
    assert all(h in unknown_store.headers for h in QUOTA_HEADERS)


def account(sandbox: RunningSandbox, store_hash: str, scopes: list[str]) -> dict[str, Any]:
    with sandbox.client() as client:
        created = client.post(
            "/sandbox/bigcommerce/accounts", json={"store_hash": store_hash, "scopes": scopes}
        )
        created.raise_for_status()
        return created.json()


def test_hooks_belong_to_their_api_account_and_die_with_it(
    sandbox: RunningSandbox, webhook_sink: WebhookSink
) -> None:
    store_hash, _ = new_store(sandbox, customers=5, orders=0, plan="unlimited")
    read = ["store_v2_customers_read_only"]
    first, second = account(sandbox, store_hash, read), account(sandbox, store_hash, read)
    hook = {"scope": "store/customer/*", "destination": f"{webhook_sink.url}/first"}
    with api(sandbox, store_hash, first["access_token"]) as bc:
        first_hook = bc.post("/v3/hooks", json=hook).json()["data"]
    with api(sandbox, store_hash, second["access_token"]) as bc:
        assert bc.get("/v3/hooks").json()["data"] == [], "another account's hooks are invisible"
        assert bc.delete(f"/v3/hooks/{first_hook['id']}").status_code == 404
        bc.post("/v3/hooks", json={**hook, "destination": f"{webhook_sink.url}/second"})
    with api(sandbox, store_hash, first["access_token"]) as bc:
        assert [h["id"] for h in bc.get("/v3/hooks").json()["data"]] == [first_hook["id"]]
        assert first_hook["client_id"] == first["client_id"]

    with sandbox.client() as client:
        assert (
            client.delete(f"/sandbox/bigcommerce/accounts/{first['client_id']}").status_code == 204
        )
        assert (
            client.delete(f"/sandbox/bigcommerce/accounts/{first['client_id']}").status_code == 404
        )
        client.patch(
            f"/sandbox/bigcommerce/stores/{store_hash}/customers/2", json={"first_name": "Renamed"}
        ).raise_for_status()
        hooks = next(
            s
            for s in client.get("/sandbox/state").json()["bigcommerce"]["stores"]
            if s["store_hash"] == store_hash
        )["hooks"]
    [delivered] = webhook_sink.wait_for(1)
    time.sleep(0.2)  # a delivery to the dead account's hook would have arrived by now
    assert [r.path for r in webhook_sink.received] == ["/second"] == [delivered.path]
    assert [h["client_id"] for h in hooks] == [second["client_id"]]
    with api(sandbox, store_hash, first["access_token"]) as bc:
        assert bc.get("/v3/hooks").status_code == 401
