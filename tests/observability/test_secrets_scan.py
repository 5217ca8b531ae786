"""Promises 1 and 3 end to end: after a scripted pass over everything, through the API and
against the sandbox, no platform token and no shopper e-mail or phone is anywhere durable
or visible: not in a pg_dump, not in a log line at DEBUG, not in a job's arguments, not in
an API response.

The pass: a BigCommerce token paste, then a swap to a second token; a Shopify Grant Access
and a token refresh; a full BigCommerce pull through the real worker with faults on (429,
5xx, a truncated body); webhooks of both platforms; Shopify's three compliance requests
(customers/data_request, customers/redact, shop/redact, signed as Shopify signs them) and
the jobs they leave, run by the worker; erasures by identifier and by customer; failing
requests carrying canary identifiers and a canary token. The needles: every e-mail and
phone of the sandbox stores' generated customers and orders (raw, lowercased, normalized,
digits), the canary identifiers, every token issued. Then the scan is shown to work: one
needle planted in each place is found.
"""

from __future__ import annotations

import json
import logging
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
from observability_support import json_logs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "connectors"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sync"))

from shopify_fixtures import Shop, grant
from sync_support import (
    granted_bigcommerce_connector,
    run_jobs_until_idle,
    run_until_ended,
    start_sync,
)

from athos_identity.connectors.shopify import tokens
from athos_identity.identity.normalize import normalize_email, normalize_phone
from support import TenantKeys

pytest_plugins = ["bigcommerce_fixtures", "shopify_fixtures"]

CANARY_EMAILS = ["Scan.Canary+Tag@Gmail.com", "PANGOLIN.canary@example.org"]
BAD_CANARY_EMAIL = "axolotl.canary@@example.org"
CANARY_PHONE = "+1 415 555 0142"
CANARY_TOKEN = "cnrytok" + uuid.uuid4().hex  # a wrong BigCommerce token pasted once
# Simulated platforms (and the test's own HTTP client) log too: they are not the service.
NOT_THE_SERVICE = ("athos_identity.sandbox", "uvicorn", "sandbox", "tests.")


# --- needles ------------------------------------------------------------------------------


def identifier_needles(emails: list[str | None], phones: list[str | None]) -> set[str]:
    """Every spelling a leak could take; short or all-digit fragments that could match by
    chance (ids, timestamps) are left out."""
    found: set[str] = set()
    for email in filter(None, emails):
        found.add(email.strip().lower())
        try:
            found.add(normalize_email(email))
        except Exception:
            continue
    for phone in filter(None, phones):
        found.add(phone.strip().lower())
        digits = "".join(ch for ch in phone if ch.isdigit())
        found.add(digits)
        for region in ("US", "GB", "FR", "DE", "CA", "AU"):
            try:
                found.add(normalize_phone(phone, region).lstrip("+"))
            except Exception:
                continue
    return {n for n in found if len(n) >= 10 or (len(n) >= 6 and not n.isdigit())}


def store_needles(data: Any) -> set[str]:
    emails: list[str | None] = []
    phones: list[str | None] = []
    for customer in data.customers.iter_by_id():
        emails.append(customer.email)
        phones += [customer.phone, customer.address_phone]
    for order in data.orders.iter_by_id():
        emails.append(order.email)
        phones.append(order.phone)
    return identifier_needles(emails, phones)


def scan(needles: set[str], channels: dict[str, str]) -> dict[str, list[str]]:
    hits = {}
    for name, text in channels.items():
        haystack = text.lower()
        found = sorted(n for n in needles if n.lower() in haystack)
        if found:
            hits[name] = found
    return hits


# --- the pass -----------------------------------------------------------------------------


class Responses:
    """Every response the service sent to the test: status line, headers and body."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    async def __call__(self, response: httpx.Response) -> None:
        await response.aread()
        self.texts.append(f"{response.status_code} {dict(response.headers)} {response.text}")


async def failing_requests(client: httpx.AsyncClient, tenant: TenantKeys, bc_id: str) -> None:
    lookup = {"identifiers": [{"type": "email", "value": BAD_CANARY_EMAIL}]}
    assert (await client.post("/v1/identity/lookup", json=lookup, headers=tenant.admin)).status_code == 422  # fmt: skip  # noqa: E501
    unauthorized = {"Authorization": "Bearer athk_" + "0" * 32 + "_" + CANARY_TOKEN[:43].ljust(43, "x")}  # fmt: skip  # noqa: E501
    good = {"identifiers": [{"type": "email", "value": CANARY_EMAILS[0]}]}
    assert (await client.post("/v1/identity/lookup", json=good, headers=unauthorized)).status_code == 401  # fmt: skip  # noqa: E501
    phone = {"identifiers": [{"type": "phone", "value": CANARY_PHONE + " ext. canary"}]}
    await client.post("/v1/identity/lookup", json=phone, headers=tenant.admin)
    bad_store = {"platform": "bigcommerce", "name": "x", "store": CANARY_EMAILS[1]}
    assert (await client.post("/v1/connectors", json=bad_store, headers=tenant.admin)).status_code == 422  # fmt: skip  # noqa: E501
    wrong_token = {"store_hash": "nosuchstore", "access_token": CANARY_TOKEN}
    response = await client.put(
        f"/v1/connectors/{bc_id}/bigcommerce/credentials", json=wrong_token, headers=tenant.admin
    )
    assert response.status_code >= 400
    records = {
        "records": [
            {"customer_id": "canary-1", "emails": CANARY_EMAILS, "phones": [CANARY_PHONE]},
            {"customer_id": "canary-2", "emails": [BAD_CANARY_EMAIL], "phones": ["+1 CANARY"]},
        ]
    }
    assert (await client.post("/v1/identity/records", json=records, headers=tenant.admin)).status_code == 200  # fmt: skip  # noqa: E501
    assert (await client.post("/v1/identity/lookup", json=good, headers=tenant.admin)).json()["results"][0]["matched"]  # fmt: skip  # noqa: E501


WEBHOOKS = "/v1/webhooks/shopify"


async def compliance_request(
    client: httpx.AsyncClient, shop: Shop, sink: Any, topic: str, **body: Any
) -> dict[str, Any]:
    """The sandbox sends the compliance topic with Shopify's payload (the shopper's e-mail
    and phone included), signed with the app's secret; it is replayed into the service."""
    count = len(sink.received)
    shop.admin("POST", "/compliance", json={"topic": topic, "url": f"{sink.url}{WEBHOOKS}", **body})
    delivery = sink.wait_for(count + 1)[-1]
    assert delivery.headers["X-Shopify-Topic"] == topic
    assert delivery.headers["X-Shopify-Hmac-Sha256"]
    response = await client.post(WEBHOOKS, content=delivery.body, headers=delivery.headers)
    assert response.status_code == 200, response.text
    return dict(json.loads(delivery.body))


async def run_every_queued_job(owner_conn: psycopg.Connection) -> None:
    """A worker over every queue holding jobs due now (webhooks may hand their work to a
    job), the periodic scheduler's queue excepted (its timing is not the test's)."""
    queues = [
        row[0]
        for row in owner_conn.execute(
            "SELECT DISTINCT queue_name FROM procrastinate_jobs WHERE status = 'todo'"
            " AND (scheduled_at IS NULL OR scheduled_at <= now()) AND queue_name <> 'scheduler'"
        )
    ]
    if queues:
        await run_jobs_until_idle(tuple(queues))


def erasable_shoppers(store_data: Any, count: int) -> list[Any]:
    """Pulled customers whose e-mail is valid: their erasure must succeed, not be a 422."""
    found = []
    for customer in store_data.customers.iter_by_id():
        try:
            normalize_email(customer.email or "")
        except Exception:
            continue
        found.append(customer)
    return found[:count]


async def replay_deliveries(client: httpx.AsyncClient, sink: Any, count: int) -> int:
    deliveries = sink.wait_for(count, timeout=10)
    for delivery in deliveries:
        response = await client.post(delivery.path, content=delivery.body, headers=delivery.headers)
        assert response.status_code == 200, response.text
    return len(deliveries)


async def test_nothing_leaks_anywhere(
    app: object,
    tenant: TenantKeys,
    shop: Shop,
    shopify_sink: Any,
    bc_store: Any,
    owner_conn: psycopg.Connection,
    pg_dump: Any,
) -> None:
    responses = Responses()
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
        base_url="http://testserver",
        event_hooks={"response": [responses]},
    )
    with json_logs(logging.DEBUG) as logs:
        async with client:
            # BigCommerce: paste a token, then swap to a second API account's token
            bc_id = await granted_bigcommerce_connector(client, tenant.admin, bc_store)
            first_token = bc_store.token
            bc_store.token = bc_store.new_account(
                ["store_v2_customers_read_only", "store_v2_orders_read_only"]
            )
            swapped = await client.put(
                f"/v1/connectors/{bc_id}/bigcommerce/credentials",
                json={"api_path": bc_store.api_path, "access_token": bc_store.token},
                headers=tenant.admin,
            )
            assert swapped.status_code == 200, swapped.text

            # Shopify: Grant Access, then a refresh of the expiring token
            shopify_id = await grant(client, tenant, shop)
            await tokens.refresh_now(tenant.tenant_id, uuid.UUID(shopify_id))

            # a full pull through the real worker, with faults on
            for kind in ("429", "5xx", "truncate"):
                bc_store.add_fault(kind=kind, count=1)
            run_id = await start_sync(client, tenant.admin, bc_id, "full")
            run = await run_until_ended(client, tenant.admin, run_id)
            assert run["status"] == "succeeded", run
            assert run["customers"] > 0

            # webhooks of both platforms, replayed into the service as delivered
            with bc_store.sandbox.client() as sandbox:
                sandbox.patch(
                    f"/sandbox/bigcommerce/stores/{bc_store.store_hash}/customers/3",
                    json={"first_name": "Renamed"},
                ).raise_for_status()
            shop.admin("PATCH", f"/customers/{shop.customer_ids(1)[0]}", json={"first_name": "R"})
            await replay_deliveries(client, shopify_sink, 2)
            await run_jobs_until_idle(("hooks", "pulls"))

            # Shopify's mandatory compliance requests, then whatever jobs they queued
            first, second = shop.customer_ids(2)
            requested = await compliance_request(
                client, shop, shopify_sink, "customers/data_request", customer_id=first
            )
            redacted = await compliance_request(
                client, shop, shopify_sink, "customers/redact", customer_id=second
            )
            await compliance_request(client, shop, shopify_sink, "shop/redact")
            await run_every_queued_job(owner_conn)

            # erasures of pulled shoppers (by identifier, by customer), failing requests
            bc_data = bc_store.sandbox.state.stores[bc_store.store_hash].data
            shoppers = erasable_shoppers(bc_data, 4)
            assert len(shoppers) == 4
            by_email, by_id = shoppers[:2], shoppers[2:]
            erased = await client.post(
                "/v1/identity/erase",
                json={"identifiers": [{"type": "email", "value": c.email} for c in by_email]},
                headers=tenant.admin,
            )
            assert erased.status_code == 200, erased.text
            assert erased.json()["links_removed"] >= 2
            forgotten = await client.post(
                "/v1/identity/erase",
                json={
                    "customers": [{"customer_id": str(c.id), "connector_id": bc_id} for c in by_id]
                },
                headers=tenant.admin,
            )
            assert forgotten.status_code == 200, forgotten.text
            assert forgotten.json()["links_removed"] >= 2
            await failing_requests(client, tenant, bc_id)
            await client.get("/v1/audit", headers=tenant.admin)
            await client.get("/metrics")

    sandbox_stores = bc_store.sandbox.state.stores[bc_store.store_hash]
    needles = (
        store_needles(sandbox_stores.data)
        | store_needles(shop.store.data)
        | identifier_needles([*CANARY_EMAILS, BAD_CANARY_EMAIL], [CANARY_PHONE])
    )
    secrets = {
        first_token,
        bc_store.token,
        CANARY_TOKEN,
        tenant.admin_key,
        *shop.store.access_tokens,
        *shop.store.refresh_tokens,
        shop.sandbox.state.config.shopify_client_secret,
    }
    assert len(secrets) >= 6 and len(needles) > 50
    for payload in (requested, redacted):  # what the compliance requests carried is sought
        assert payload["customer"]["email"].strip().lower() in needles
    needles |= secrets

    def channels() -> dict[str, str]:
        service_logs = [
            line for line in logs.lines if not line["logger"].startswith(NOT_THE_SERVICE)
        ]
        job_args = owner_conn.execute("SELECT args::text FROM procrastinate_jobs").fetchall()
        return {
            "database": pg_dump(),
            "logs": "\n".join(map(str, service_logs)),
            "job arguments": "\n".join(row[0] for row in job_args),
            "responses": "\n".join(responses.texts),
        }

    found = channels()
    assert len(found["logs"]) > 10_000 and len(found["responses"]) > 5_000
    assert (
        "sync.pull"
        in owner_conn.execute(
            "SELECT string_agg(task_name, ',') FROM procrastinate_jobs"
        ).fetchone()[0]
    )
    compliance = owner_conn.execute(
        "SELECT array_agg(topic ORDER BY topic) FROM shopify_compliance_requests"
    ).fetchone()[0]
    assert compliance == ["customers/data_request", "customers/redact", "shop/redact"]
    assert scan(needles, found) == {}

    # The scan finds what it looks for: one needle planted in each place.
    planted_email = sorted(n for n in needles if "@" in n)[0]
    with json_logs(logging.DEBUG) as more_logs:
        logging.getLogger("athos_identity.planted").debug("planted %s", planted_email)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
        base_url="http://testserver",
        event_hooks={"response": [responses]},
    ) as again:
        named = await again.post(
            "/v1/connectors",
            json={"platform": "shopify", "name": f"planted {bc_store.token}"},
            headers=tenant.admin,
        )
        assert named.status_code == 201, named.text
    owner_conn.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args) VALUES ('planted', 'planted', %s)",  # noqa: E501
        (f'{{"shopper": "{planted_email}"}}',),
    )
    planted = channels()
    planted["logs"] += "\n".join(map(str, more_logs.lines))
    hits = scan(needles, planted)
    assert planted_email in hits["logs"]
    assert planted_email in hits["job arguments"]
    assert bc_store.token in hits["database"]
    assert bc_store.token in hits["responses"]
