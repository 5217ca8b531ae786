"""Promise 1: no raw e-mail or phone is written anywhere durable, nor logged.

Canary identifiers go through every identity path — ingest (valid and invalid), look-up
(raw, malformed), erasure (by identifier, with invalid items, by customer) — with logging
at DEBUG; then neither a pg_dump of the whole database nor the captured log lines may
contain any of them, in any letter case or in their normalized forms.
"""

from __future__ import annotations

import logging

import httpx
import pytest

from athos_identity.identity.normalize import normalize_email, normalize_phone
from support import TenantKeys

CANARY_EMAILS = [
    "Zyxwv.Canary+Tag@Gmail.com",
    "QUOKKA.canary@example.org",
    "ünïcødé.canary@exämple.de",
]
INVALID_CANARY_EMAILS = ["narwhal.canary@@example.com", "okapi canary@example.com"]
CANARY_PHONES = ["(415) 555-0187", "+44 20 7946 0961", "06 98 76 54 32"]
INVALID_CANARY_PHONES = ["+1 415 CANARY 99", "0033 1"]


def needles() -> set[str]:
    """Every spelling a leak could take: raw, lowercased, normalized, digits only."""
    found: set[str] = set()
    for email in CANARY_EMAILS + INVALID_CANARY_EMAILS:
        found.add(email.strip().lower())
        found.add(email.split("@")[0].lower())
    for email in CANARY_EMAILS:
        found.add(normalize_email(email))
    regions = ["US", "GB", "FR"]
    for phone, region in zip(CANARY_PHONES, regions, strict=True):
        found.add(normalize_phone(phone, region).lstrip("+"))
        found.add("".join(ch for ch in phone if ch.isdigit()))
        found.add(phone.lower())
    for phone in INVALID_CANARY_PHONES:
        found.add(phone.lower())
    return {n for n in found if len(n) >= 6}


def leaks(text: str) -> list[str]:
    haystack = text.lower()
    return sorted(n for n in needles() if n in haystack)


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


async def test_no_canary_reaches_the_database_or_the_logs(
    client: httpx.AsyncClient, tenant: TenantKeys, pg_dump, debug_logs: pytest.LogCaptureFixture
) -> None:
    headers = tenant.admin
    records = [
        {"customer_id": "c1", "emails": CANARY_EMAILS[:2], "phones": CANARY_PHONES[:2]},
        {
            "customer_id": "c2",
            "emails": [CANARY_EMAILS[2], *INVALID_CANARY_EMAILS],
            "phones": [CANARY_PHONES[2], *INVALID_CANARY_PHONES],
            "default_region": "FR",
        },
    ]
    ingested = await client.post("/v1/identity/records", json={"records": records}, headers=headers)
    assert ingested.status_code == 200 and ingested.json()["skipped"] == 4

    raw_lookups = [{"type": "email", "value": e} for e in CANARY_EMAILS] + [
        {"type": "phone", "value": CANARY_PHONES[0]},
        {"type": "phone", "value": CANARY_PHONES[1]},
        {"type": "phone", "value": CANARY_PHONES[2], "region": "FR"},
    ]
    found = await client.post(
        "/v1/identity/lookup", json={"identifiers": raw_lookups}, headers=headers
    )
    assert found.status_code == 200 and all(r["matched"] for r in found.json()["results"])

    failing = [{"type": "email", "value": e} for e in INVALID_CANARY_EMAILS] + [
        {"type": "phone", "value": p} for p in INVALID_CANARY_PHONES
    ]
    rejected = await client.post(
        "/v1/identity/lookup", json={"identifiers": failing}, headers=headers
    )
    assert rejected.status_code == 422
    assert leaks(rejected.text) == []
    not_json = await client.post(
        "/v1/identity/lookup",
        content=f'{{"identifiers": [{{"type": "email", "value": "{CANARY_EMAILS[1]}"'.encode(),
        headers={**headers, "Content-Type": "application/json"},
    )
    assert not_json.status_code == 400 and leaks(not_json.text) == []
    wrong_shape = await client.post(
        "/v1/identity/lookup",
        json={
            "identifiers": [{"type": "email", "value": CANARY_EMAILS[0], "extra": CANARY_EMAILS[1]}]
        },
        headers=headers,
    )
    assert wrong_shape.status_code == 422 and leaks(wrong_shape.text) == []

    erased = await client.post(
        "/v1/identity/erase",
        json={"identifiers": [{"type": "email", "value": CANARY_EMAILS[0]}]},
        headers=headers,
    )
    assert erased.json() == {"links_removed": 1, "orders_scrubbed": 0}
    # an erasure with invalid items is refused whole, and its error names positions only
    refused = await client.post(
        "/v1/identity/erase",
        json={
            "identifiers": [
                {"type": "email", "value": CANARY_EMAILS[1]},
                {"type": "email", "value": INVALID_CANARY_EMAILS[0]},
                {"type": "phone", "value": INVALID_CANARY_PHONES[0]},
            ]
        },
        headers=headers,
    )
    assert refused.status_code == 422 and leaks(refused.text) == []
    assert [e["index"] for e in refused.json()["errors"]] == [1, 2]
    by_customer = await client.post(
        "/v1/identity/erase", json={"customers": [{"customer_id": "c2"}]}, headers=headers
    )
    assert by_customer.json() == {"links_removed": 2, "orders_scrubbed": 0}
    still = await client.post(
        "/v1/identity/lookup",
        json={"identifiers": [{"type": "email", "value": CANARY_EMAILS[1]}]},
        headers=headers,
    )
    assert still.json()["results"][0]["matched"], "the refused erasure erased nothing"

    dump = pg_dump()
    assert "identity_links" in dump, "the dump holds the link table"
    assert leaks(dump) == []
    log_text = "\n".join(
        f"{r.getMessage()} {r.args!r} {getattr(r, '__dict__', '')!r}" for r in debug_logs.records
    )
    assert leaks(log_text) == []


def test_the_needles_would_be_found() -> None:
    """The scan itself works: a planted canary in any case is reported."""
    assert leaks("... ZYXWVCANARY@gmail.com ...") == ["zyxwvcanary@gmail.com"]
    assert "4155550187" in leaks("tel 14155550187")
