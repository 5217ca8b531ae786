"""Ingest, look-up and erasure over HTTP, against the real database."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import uuid

import httpx

from athos_identity import db
from athos_identity.identity.service import hasher_for
from athos_identity.sales import repository as sales
from athos_identity.sales.records import OrderRecord, hash_order
from support import TenantKeys, bearer, create_key

LOOKUP = "/v1/identity/lookup"
RECORDS = "/v1/identity/records"
ERASE = "/v1/identity/erase"


def sha256_hex(normalized: str) -> str:
    return hashlib.sha256(normalized.encode()).hexdigest()


def sha256_b64(normalized: str) -> str:
    return base64.b64encode(hashlib.sha256(normalized.encode()).digest()).decode()


async def ingest(client: httpx.AsyncClient, keys: TenantKeys, records: list[dict]) -> dict:
    response = await client.post(RECORDS, json={"records": records}, headers=keys.admin)
    assert response.status_code == 200, response.text
    return response.json()


async def lookup(
    client: httpx.AsyncClient, headers: dict, identifiers: list[dict]
) -> httpx.Response:
    return await client.post(LOOKUP, json={"identifiers": identifiers}, headers=headers)


def customer_ids(result: dict) -> list[str]:
    return [c["customer_id"] for c in result["customers"]]


async def test_raw_hex_and_base64_lookups_find_the_same_customer(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    stored = await ingest(
        client,
        tenant,
        [
            {
                "customer_id": "c-1",
                "emails": [" Jane.Doe+news@GMAIL.com "],
                "phones": ["(415) 555-0134"],
            }
        ],
    )
    assert stored["links_added"] == 2 and stored["skipped"] == 0

    lookup_key = await create_key(tenant.tenant_id, "lookup")
    response = await lookup(
        client,
        bearer(lookup_key),
        [
            {"type": "email", "value": "janedoe@gmail.com"},
            {"type": "email_sha256", "value": sha256_hex("janedoe@gmail.com")},
            {"type": "email_sha256", "value": sha256_hex("janedoe@gmail.com").upper()},
            {"type": "email_sha256", "value": sha256_b64("janedoe@gmail.com")},
            {"type": "phone", "value": "+1 415-555-0134"},
            {"type": "phone", "value": "415 555 0134"},  # the tenant's default region, US
            {"type": "phone_sha256", "value": sha256_hex("+14155550134")},
            {"type": "email", "value": "someone.else@example.com"},
        ],
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["matched"] for r in results] == [True] * 7 + [False]
    assert all(customer_ids(r) == ["c-1"] for r in results[:7])
    assert results[7]["customers"] == []


async def test_the_same_email_in_two_tenants_is_kept_apart(
    client: httpx.AsyncClient, tenant: TenantKeys, other_tenant: TenantKeys, owner_conn
) -> None:
    await ingest(client, tenant, [{"customer_id": "acme-7", "emails": ["shared@example.com"]}])
    await ingest(
        client, other_tenant, [{"customer_id": "globex-9", "emails": ["shared@example.com"]}]
    )

    keys = owner_conn.execute("SELECT tenant_id, key FROM identity_links").fetchall()
    assert len(keys) == 2 and keys[0][1] != keys[1][1], "stored keys differ per tenant"

    query = [{"type": "email", "value": "shared@example.com"}]
    mine = (await lookup(client, tenant.admin, query)).json()["results"][0]
    theirs = (await lookup(client, other_tenant.admin, query)).json()["results"][0]
    assert customer_ids(mine) == ["acme-7"]
    assert customer_ids(theirs) == ["globex-9"]


async def test_shared_identifiers_return_every_customer(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    await ingest(
        client,
        tenant,
        [
            {"customer_id": "a", "phones": ["+44 20 7946 0018"]},
            {"customer_id": "b", "phones": ["020 7946 0018"], "default_region": "GB"},
        ],
    )
    result = (
        await lookup(client, tenant.admin, [{"type": "phone", "value": "+442079460018"}])
    ).json()
    assert sorted(customer_ids(result["results"][0])) == ["a", "b"]


async def test_invalid_items_are_reported_by_index_and_skipped(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    body = await ingest(
        client,
        tenant,
        [
            {"customer_id": "ok", "emails": ["ok@example.com"]},
            {
                "customer_id": "bad",
                "emails": ["not-an-email", "fine@example.com"],
                "phones": ["12"],
            },
        ],
    )
    assert body["skipped"] == 2 and body["links_added"] == 2
    assert {(e["index"], e["field"]) for e in body["errors"]} == {(1, "emails.0"), (1, "phones.0")}
    assert "not-an-email" not in str(body)
    found = (
        await lookup(client, tenant.admin, [{"type": "email", "value": "fine@example.com"}])
    ).json()
    assert customer_ids(found["results"][0]) == ["bad"]


async def test_replaying_a_batch_changes_nothing_and_a_new_email_replaces_the_old(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    batch = [{"customer_id": "c", "emails": ["old@example.com"]}]
    assert (await ingest(client, tenant, batch))["links_added"] == 1
    again = await ingest(client, tenant, batch)
    assert again["links_added"] == 0 and again["links_removed"] == 0

    moved = await ingest(client, tenant, [{"customer_id": "c", "emails": ["new@example.com"]}])
    assert moved["links_added"] == 1 and moved["links_removed"] == 1
    results = (
        await lookup(
            client,
            tenant.admin,
            [
                {"type": "email", "value": "old@example.com"},
                {"type": "email", "value": "new@example.com"},
            ],
        )
    ).json()["results"]
    assert [r["matched"] for r in results] == [False, True]


async def test_malformed_lookup_identifiers_are_422_per_item_without_echo(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    response = await lookup(
        client,
        tenant.admin,
        [
            {"type": "email", "value": "fine@example.com"},
            {"type": "email", "value": "secret.person@@example.com"},
            {"type": "email_sha256", "value": "abc123"},
            {"type": "phone", "value": "call me maybe 555"},
        ],
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert [e["index"] for e in errors] == [1, 2, 3]
    assert errors[1]["field"] == "identifiers.2.value"
    for raw in ("secret.person", "abc123", "call me maybe"):
        assert raw not in response.text


async def test_batch_limits(client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    empty = await lookup(client, tenant.admin, [])
    assert empty.status_code == 422
    too_many = await lookup(client, tenant.admin, [{"type": "email", "value": "a@b.co"}] * 1001)
    assert too_many.status_code == 422
    assert "1000" in too_many.text
    empty_ingest = await client.post(RECORDS, json={"records": []}, headers=tenant.admin)
    assert empty_ingest.status_code == 422
    unknown_type = await lookup(client, tenant.admin, [{"type": "ssn", "value": "x"}])
    assert unknown_type.status_code == 422 and unknown_type.json()["errors"][0]["field"].endswith(
        "type"
    )


async def test_an_oversize_ingest_batch_is_422_stating_the_limit(
    client: httpx.AsyncClient, tenant: TenantKeys, owner_conn
) -> None:
    records = [{"customer_id": f"c{i}", "emails": [f"c{i}@example.com"]} for i in range(10_001)]
    response = await client.post(RECORDS, json={"records": records}, headers=tenant.admin)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "10000" in response.json()["detail"]
    assert [e["field"] for e in response.json()["errors"]] == ["body.records"]
    assert "c7@example.com" not in response.text
    assert owner_conn.execute("SELECT count(*) FROM identity_links").fetchone()[0] == 0
    at_the_limit = await client.post(
        RECORDS, json={"records": records[:10_000]}, headers=tenant.admin
    )
    assert at_the_limit.status_code == 200 and at_the_limit.json()["links_added"] == 10_000


async def test_a_lookup_key_cannot_ingest_or_erase(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    lookup_only = bearer(await create_key(tenant.tenant_id, "lookup"))
    ingest_attempt = await client.post(
        RECORDS,
        json={"records": [{"customer_id": "x", "emails": ["x@example.com"]}]},
        headers=lookup_only,
    )
    assert ingest_attempt.status_code == 403
    erase_attempt = await client.post(
        ERASE, json={"customers": [{"customer_id": "x"}]}, headers=lookup_only
    )
    assert erase_attempt.status_code == 403


async def test_erase_by_identifier_and_by_customer(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    await ingest(
        client,
        tenant,
        [
            {"customer_id": "a", "emails": ["a@example.com"], "phones": ["+33 6 12 34 56 78"]},
            {"customer_id": "b", "emails": ["b@example.com"]},
        ],
    )
    by_identifier = await client.post(
        ERASE,
        json={"identifiers": [{"type": "email", "value": "b@example.com"}]},
        headers=tenant.admin,
    )
    assert by_identifier.json() == {"links_removed": 1, "orders_scrubbed": 0}
    by_customer = await client.post(
        ERASE, json={"customers": [{"customer_id": "a"}]}, headers=tenant.admin
    )
    assert by_customer.json() == {"links_removed": 2, "orders_scrubbed": 0}
    results = (
        await lookup(
            client,
            tenant.admin,
            [
                {"type": "email", "value": "a@example.com"},
                {"type": "phone", "value": "+33612345678"},
                {"type": "email", "value": "b@example.com"},
            ],
        )
    ).json()["results"]
    assert not any(r["matched"] for r in results)
    nothing = await client.post(ERASE, json={}, headers=tenant.admin)
    assert nothing.status_code == 422


async def test_no_get_with_raw_identifiers(client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    response = await client.get(LOOKUP, params={"email": "a@example.com"}, headers=tenant.admin)
    assert response.status_code == 405


async def store_orders(tenant: TenantKeys, connector_id: str, orders: list[OrderRecord]) -> None:
    """Orders as a pull writes them: hashed with the tenant's key, through the repository."""
    hasher = hasher_for(tenant.tenant_id)
    async with db.tenant_transaction(tenant.tenant_id) as session:
        await sales.upsert_orders(
            session,
            tenant.tenant_id,
            uuid.UUID(connector_id),
            [hash_order(o, hasher) for o in orders],
        )


def order_hashes(owner_conn, tenant: TenantKeys) -> dict[str, tuple[bool, bool]]:
    """order id -> (has an e-mail hash, has a phone hash), read as the tables' owner."""
    rows = owner_conn.execute(
        "SELECT order_id, email_key IS NOT NULL, phone_key IS NOT NULL FROM orders"
        " WHERE tenant_id = %s",
        (tenant.tenant_id,),
    ).fetchall()
    return {order_id: (email, phone) for order_id, email, phone in rows}


async def test_erasure_scrubs_the_hashes_on_orders_by_identifier_and_by_customer(
    client: httpx.AsyncClient, tenant: TenantKeys, owner_conn
) -> None:
    await ingest(
        client,
        tenant,
        [
            {"customer_id": "a", "emails": ["a@example.com"], "phones": ["+33 6 12 34 56 78"]},
            {"customer_id": "c", "emails": ["c@example.com"]},
        ],
    )
    found = await lookup(client, tenant.admin, [{"type": "email", "value": "c@example.com"}])
    connector_id = found.json()["results"][0]["customers"][0]["connector_id"]
    await store_orders(
        tenant,
        connector_id,
        [
            OrderRecord("o-a1", "a", email="A@Example.com", phone="+33612345678", region="FR"),
            OrderRecord("o-a2", "a", email="a@example.com"),
            OrderRecord("o-guest", None, email="guest@example.com", phone="+1 415 555 0100"),
            OrderRecord("o-c", "c", email="c@example.com", phone="+1 415 555 0199"),
        ],
    )
    assert order_hashes(owner_conn, tenant) == {
        "o-a1": (True, True), "o-a2": (True, False), "o-guest": (True, True), "o-c": (True, True),
    }  # fmt: skip

    # a guest has no customer id: an identifier is the only way to reach their order
    by_identifier = await client.post(
        ERASE,
        json={
            "identifiers": [
                {"type": "email_sha256", "value": sha256_hex("guest@example.com")},
                {"type": "phone", "value": "(415) 555-0100"},
            ]
        },
        headers=tenant.admin,
    )
    assert by_identifier.status_code == 200, by_identifier.text
    assert by_identifier.json() == {"links_removed": 0, "orders_scrubbed": 1}
    assert order_hashes(owner_conn, tenant)["o-guest"] == (False, False)

    by_customer = await client.post(
        ERASE,
        json={"customers": [{"customer_id": "a", "connector_id": connector_id}]},
        headers=tenant.admin,
    )
    assert by_customer.status_code == 200, by_customer.text
    assert by_customer.json() == {"links_removed": 2, "orders_scrubbed": 2}
    assert order_hashes(owner_conn, tenant) == {
        "o-a1": (False, False), "o-a2": (False, False), "o-guest": (False, False),
        "o-c": (True, True),
    }  # fmt: skip
    # the sales data itself stays (it carries no personal data)
    orders = await client.get("/v1/customers/a/orders", headers=tenant.admin)
    assert {o["order_id"] for o in orders.json()["orders"]} == {"o-a1", "o-a2"}

    # erasing again finds nothing more to scrub
    again = await client.post(
        ERASE, json={"customers": [{"customer_id": "a"}]}, headers=tenant.admin
    )
    assert again.json() == {"links_removed": 0, "orders_scrubbed": 0}


async def test_erasing_a_customer_of_a_connector_the_tenant_does_not_have_is_404(
    client: httpx.AsyncClient, tenant: TenantKeys, other_tenant: TenantKeys, owner_conn
) -> None:
    await ingest(client, tenant, [{"customer_id": "mine", "emails": ["mine@example.com"]}])
    await ingest(
        client, other_tenant, [{"customer_id": "theirs@example.com", "emails": ["t@example.com"]}]
    )
    theirs = await lookup(client, other_tenant.admin, [{"type": "email", "value": "t@example.com"}])
    their_connector = theirs.json()["results"][0]["customers"][0]["connector_id"]
    links_before = owner_conn.execute("SELECT count(*) FROM identity_links").fetchone()[0]

    for connector_id in (their_connector, str(uuid.uuid4())):
        response = await client.post(
            ERASE,
            json={
                "customers": [
                    {"customer_id": "mine"},
                    {"customer_id": "theirs@example.com", "connector_id": connector_id},
                ]
            },
            headers=tenant.admin,
        )
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert [e["field"] for e in body["errors"]] == ["customers.1.connector_id"]
        assert "theirs@example.com" not in response.text and connector_id not in response.text
    # nothing was erased, in either tenant
    assert owner_conn.execute("SELECT count(*) FROM identity_links").fetchone()[0] == links_before


async def test_concurrent_lookups_of_two_tenants_each_find_only_their_own(
    client: httpx.AsyncClient, tenant: TenantKeys, other_tenant: TenantKeys
) -> None:
    """Look-ups arriving together share statements (kit/coalesce.py), per tenant only."""
    await ingest(client, tenant, [{"customer_id": "acme-7", "emails": ["shared@example.com"]}])
    await ingest(
        client, other_tenant, [{"customer_id": "globex-9", "emails": ["shared@example.com"]}]
    )
    await ingest(client, tenant, [{"customer_id": "acme-8", "emails": ["only@acme.example"]}])
    queries = [
        (keys, value)
        for _ in range(40)
        for keys in (tenant, other_tenant)
        for value in ("shared@example.com", "only@acme.example")
    ]
    responses = await asyncio.gather(
        *(lookup(client, keys.admin, [{"type": "email", "value": v}]) for keys, v in queries)
    )
    expected = {
        (tenant.tenant_id, "shared@example.com"): ["acme-7"],
        (tenant.tenant_id, "only@acme.example"): ["acme-8"],
        (other_tenant.tenant_id, "shared@example.com"): ["globex-9"],
        (other_tenant.tenant_id, "only@acme.example"): [],
    }
    for (keys, value), response in zip(queries, responses, strict=True):
        assert response.status_code == 200
        assert customer_ids(response.json()["results"][0]) == expected[(keys.tenant_id, value)]


async def test_a_lookup_body_is_refused_as_any_other_body(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    """The look-up route reads its body itself (kit/direct.py), with the API's usual answers."""
    bad_json = {**tenant.admin, "Content-Type": "application/json"}
    assert (await client.post(LOOKUP, content=b"{not json", headers=bad_json)).status_code == 400
    no_key = await client.post(LOOKUP, content=b"{not json", headers={"Content-Type": "x/y"})
    assert no_key.status_code == 401, "the key is checked before the body"
    empty = await client.post(LOOKUP, content=b"", headers=bad_json)
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "body"
    body = b'{"identifiers": [{"type": "email", "value": "a@b.co"}]}'
    as_text = await client.post(
        LOOKUP, content=body, headers={**tenant.admin, "Content-Type": "text/plain"}
    )
    assert as_text.status_code == 422
    as_vendor_json = await client.post(
        LOOKUP, content=body, headers={**tenant.admin, "Content-Type": "application/vnd.x+json"}
    )
    assert as_vendor_json.status_code == 200
    extra = await lookup(client, tenant.admin, [{"type": "email", "value": "a@b.co", "x": 1}])
    assert extra.status_code == 422
    assert extra.json()["errors"][0]["field"] == "body.identifiers.0.x"
    assert extra.headers["content-type"] == "application/problem+json"


async def test_a_lookup_whose_client_goes_away_mid_body_is_a_400_not_a_500(
    app, tenant: TenantKeys
) -> None:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": LOOKUP,
        "raw_path": LOOKUP.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"authorization", tenant.admin["Authorization"].encode()),
            (b"content-type", b"application/json"),
            (b"content-length", b"100"),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 400


async def test_the_bearer_token_is_read_as_for_every_other_route(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    query = {"identifiers": [{"type": "email", "value": "a@b.co"}]}
    for header in (f"Bearer  {tenant.admin_key}", f"bearer {tenant.admin_key} "):
        response = await client.post(LOOKUP, json=query, headers={"Authorization": header})
        keys = await client.get("/v1/keys", headers={"Authorization": header})
        assert (response.status_code, keys.status_code) == (200, 200), header
