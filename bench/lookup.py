"""Look-up benchmark (issue 3): batch throughput against the bare query, single-request latency.

Loads 1,000,000 identities for one tenant and 100,000 for each of 9 others through the
link store's COPY path, serves the API in a subprocess, then measures in the same run:
  (a) batches of 1,000 raw e-mails through POST /v1/identity/lookup, identifiers/s,
      against the same `key = ANY(...)` query sent directly with psycopg (the floor, the
      keys a bytea[] parameter; the API's own statement, keys packed in one bytea, sent
      bare is reported beside it as a stricter floor), in rounds that run floors and API
      back to back (medians reported, and each round's ratio);
  (b) single-identifier look-ups from 32 concurrent clients: requests/s, p50, p99, in a
      closed loop (saturation) and sharing increasing offered rates (open loop, timed from
      when each request was due), with the last rate before the first whose p99 exceeds
      15 ms (or that errs, or achieves less than 98 % of its rate).

    .venv/bin/python bench/lookup.py [--main 1000000] [--others 100000] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import KeepAliveConnection, fresh_database, percentile, report, served_api

from athos_identity import db
from athos_identity.identity import repository
from athos_identity.identity.hashing import hash_email
from athos_identity.identity.normalize import normalize_email
from athos_identity.identity.records import HashedCustomer
from athos_identity.identity.service import hasher_for
from athos_identity.tenants import service as tenants
from athos_identity.tenants.schemas import Scope

CHUNK = 25_000
BATCH = 1_000
BATCHES = 30
CONCURRENCY = 32
P99_TARGET_MS = 15


def email(tenant_index: int, i: int) -> str:
    return f"Shopper.{i}+t{tenant_index}@Example.com"


async def create_tenant(name: str) -> tuple[uuid.UUID, str]:
    async with db.transaction() as session:
        tenant, _, _ = await tenants.create_tenant(session, name, "US")
    async with db.tenant_transaction(tenant.tenant_id) as session:
        _, token = await tenants.create_key(session, tenant.tenant_id, [Scope.lookup])
    return tenant.tenant_id, token


async def load(tenant_id: uuid.UUID, tenant_index: int, count: int) -> None:
    hasher = hasher_for(tenant_id)
    for start in range(0, count, CHUNK):
        customers = [
            HashedCustomer(f"cust-{i}", (hash_email(email(tenant_index, i), hasher),))
            for i in range(start, min(count, start + CHUNK))
        ]
        async with db.tenant_transaction(tenant_id) as session:
            connector_id = await repository.api_connector_id(session, tenant_id)
            await repository.replace_customer_links(session, tenant_id, connector_id, customers)


def sample_emails(rng: random.Random, count: int, population: int) -> list[str]:
    # one in ten is unknown to the store, as in real recipient lists
    return [
        email(0, rng.randrange(population)) if rng.random() < 0.9 else f"nobody{rng.random()}@x.org"
        for _ in range(count)
    ]


# The floor, as the issue names it: "the same `= ANY(...)` query issued directly through
# psycopg", the keys a bytea[] parameter, no function, no row-level security, no HTTP.
FLOOR_QUERY = (
    "SELECT kind, key, connector_id, customer_id FROM identity_links"
    " WHERE tenant_id = %s AND key = ANY(%s)"
)
# Stricter, reported beside it: the API's own statement sent bare, the keys packed in one
# bytea as identity/repository sends them (psycopg dumps a list of 1,000 bytes in Python,
# which packing skips). Against this one the ratio is what the API adds to its statement.
PACKED_FLOOR_QUERY = (
    "SELECT kind, key, connector_id, customer_id FROM identity_links"
    " WHERE tenant_id = %s AND key = ANY(ARRAY("
    "   SELECT substring(%s::bytea FROM i * 32 + 1 FOR 32)"
    "   FROM generate_series(0, octet_length(%s::bytea) / 32 - 1) AS i))"
)


def floor_rate(url: str, tenant_id: uuid.UUID, keyed: list[list[bytes]], packed: bool) -> float:
    def params(keys: list[bytes]) -> tuple[object, ...]:
        if not packed:
            return (tenant_id, keys)
        joined = b"".join(keys)
        return (tenant_id, joined, joined)

    query = PACKED_FLOOR_QUERY if packed else FLOOR_QUERY
    with psycopg.connect(url) as conn:
        conn.execute(query, params(keyed[0])).fetchall()  # warm
        started = time.perf_counter()
        for keys in keyed:
            conn.execute(query, params(keys)).fetchall()
        elapsed = time.perf_counter() - started
    return len(keyed) * BATCH / elapsed


def lookup_bodies(batches: list[list[str]], prehashed: bool) -> list[str]:
    kind = "email_sha256" if prehashed else "email"

    def value(raw: str) -> str:
        return hashlib.sha256(normalize_email(raw).encode()).hexdigest() if prehashed else raw

    return [
        json.dumps({"identifiers": [{"type": kind, "value": value(e)} for e in batch]})
        for batch in batches
    ]


def api_batch_rate(base: str, token: str, bodies: list[str]) -> float:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:

        def post(body: str) -> None:
            response = client.post(
                "/v1/identity/lookup", content=body, headers={"Content-Type": "application/json"}
            )
            response.raise_for_status()
            assert len(response.json()["results"]) == BATCH

        post(bodies[0])  # warm
        started = time.perf_counter()
        for body in bodies:
            post(body)
        elapsed = time.perf_counter() - started
    return len(bodies) * BATCH / elapsed


@dataclass(frozen=True)
class Batches:
    """The same batches, in each form sent: keys for the floors, bodies for the API."""

    keyed: list[list[bytes]]
    raw_bodies: list[str]
    prehashed_bodies: list[str]

    @classmethod
    def of(cls, tenant_id: uuid.UUID, batches: list[list[str]]) -> Batches:
        hasher = hasher_for(tenant_id)
        return cls(
            keyed=[[hash_email(e, hasher).key for e in batch] for batch in batches],
            raw_bodies=lookup_bodies(batches, prehashed=False),
            prehashed_bodies=lookup_bodies(batches, prehashed=True),
        )


def batch_round(
    url: str, base: str, token: str, tenant_id: uuid.UUID, batches: Batches
) -> dict[str, float]:
    """The same batches through each floor and the API, one after the other: a round's
    ratios compare runs seconds apart, whatever the machine does meanwhile."""
    return {
        "floor": floor_rate(url, tenant_id, batches.keyed, packed=False),
        "packed_floor": floor_rate(url, tenant_id, batches.keyed, packed=True),
        "api": api_batch_rate(base, token, batches.raw_bodies),
        "api_prehashed": api_batch_rate(base, token, batches.prehashed_bodies),
    }


def batch_figures(rounds: list[dict[str, float]]) -> dict[str, object]:
    """Medians over the rounds: of each rate, and of each round's ratio."""

    def median(name: str) -> int:
        return round(statistics.median(r[name] for r in rounds))

    def ratio(api: str, floor: str) -> float:
        return round(statistics.median(r[api] / r[floor] for r in rounds), 3)

    return {
        "floor_identifiers_per_s": median("floor"),
        "packed_floor_identifiers_per_s": median("packed_floor"),
        "api_identifiers_per_s": median("api"),
        "batch_ratio": ratio("api", "floor"),
        "batch_ratios": [round(r["api"] / r["floor"], 3) for r in rounds],
        "batch_ratio_to_packed_floor": ratio("api", "packed_floor"),
        "api_prehashed_identifiers_per_s": median("api_prehashed"),
        "prehashed_batch_ratio": ratio("api_prehashed", "floor"),
    }


async def single_lookups(
    base: str, token: str, population: int, seconds: float, rate: float | None = None
) -> dict[str, float]:
    """32 clients in a closed loop (rate None: as fast as the API answers), or sharing a
    fixed offered rate (open loop: latency without self-inflicted queueing)."""
    url = urlsplit(base)
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    errors = 0

    async def one_client(seed: int, warm_until: float, until: float) -> None:
        nonlocal errors
        rng = random.Random(seed)
        connection = KeepAliveConnection(url.hostname or "127.0.0.1", url.port or 80, headers)
        interval = CONCURRENCY / rate if rate else 0.0
        next_send = time.perf_counter() + rng.random() * interval
        try:
            while True:
                if interval:
                    # Every request due before the end is sent and timed from when it was
                    # due: a client held up by the one before counts that wait, and the
                    # late ones are not dropped (no coordinated omission).
                    due, next_send = next_send, next_send + interval
                    if due >= until:
                        break
                    if due > (now := time.perf_counter()):
                        await asyncio.sleep(due - now)
                elif (due := time.perf_counter()) >= until:
                    break
                identifier = {"type": "email", "value": email(0, rng.randrange(population))}
                body = json.dumps({"identifiers": [identifier]}).encode()
                status, _ = await connection.post_json("/v1/identity/lookup", body)
                if due >= warm_until:
                    latencies.append(time.perf_counter() - due)
                    errors += status != 200
        finally:
            await connection.close()

    warm_until = time.perf_counter() + 2
    until = warm_until + seconds
    await asyncio.gather(*(one_client(s, warm_until, until) for s in range(CONCURRENCY)))
    prefix = "paced" if rate else "single"
    return {
        f"{prefix}_rps": round(len(latencies) / seconds, 1),
        f"{prefix}_p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        f"{prefix}_p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        f"{prefix}_errors": errors,
    }


def paced_sweep(
    base: str, token: str, population: int, seconds: float, rates: str
) -> dict[str, object]:
    """The 32 clients sharing each offered rate in turn (`rates` increasing). The capacity
    at the target latency is the last rate before the first one that missed (p99 over the
    target, an error, or less than 98 % of the rate achieved); None when the first misses."""
    phases = []
    capacity = None
    missed = False
    for rate in (float(r) for r in rates.split(",")):
        phase = asyncio.run(single_lookups(base, token, population, seconds, rate))
        phases.append({"offered_rps": rate, **phase})
        kept_up = phase["paced_rps"] >= 0.98 * rate and phase["paced_errors"] == 0
        missed = missed or not (kept_up and phase["paced_p99_ms"] <= P99_TARGET_MS)
        if not missed:  # the last rate of an unbroken run of passes
            capacity = rate
    return {"paced": phases, f"capacity_rps_at_p99_{P99_TARGET_MS}ms": capacity}


async def prepare(main: int, others: int) -> tuple[uuid.UUID, str, float]:
    tenant_id, token = await create_tenant("bench main")
    started = time.perf_counter()
    await load(tenant_id, 0, main)
    for index in range(1, 10):
        other_id, _ = await create_tenant(f"bench other {index}")
        await load(other_id, index, others)
    load_rate = (main + 9 * others) / (time.perf_counter() - started)
    await db.dispose_engine()
    return tenant_id, token, load_rate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--main", type=int, default=1_000_000)
    parser.add_argument("--others", type=int, default=100_000)
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="API worker processes (one leaves the second core to PostgreSQL and the clients)",
    )
    parser.add_argument("--rounds", type=int, default=5, help="batch rounds (medians reported)")
    parser.add_argument("--seconds", type=float, default=15.0, help="each single look-up phase")
    parser.add_argument(
        "--rates",
        default="1000,2000,3000,4000,5000",
        help="offered requests/s of the paced phases (comma-separated, increasing)",
    )
    args = parser.parse_args()

    with fresh_database() as url:
        print(f"loading {args.main:,} + 9 x {args.others:,} identities ...", file=sys.stderr)
        tenant_id, token, load_rate = asyncio.run(prepare(args.main, args.others))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE identity_links")
        rng = random.Random(7)
        batches = Batches.of(
            tenant_id, [sample_emails(rng, BATCH, args.main) for _ in range(BATCHES)]
        )
        # No per-key rate limit: one key sends every look-up here, at more than the default
        # 2,000/s per process, and the limiter's answer is not what is measured.
        unlimited = {"ATHOS_RATE_LIMIT_LOOKUP_PER_SECOND": "0"}
        with served_api(db.as_psycopg_url(url), workers=args.workers, settings=unlimited) as base:
            rounds = [batch_round(url, base, token, tenant_id, batches) for _ in range(args.rounds)]
            single = asyncio.run(single_lookups(base, token, args.main, args.seconds))
            paced = paced_sweep(base, token, args.main, args.seconds, args.rates)
    report(
        {
            "bench": "lookup",
            "identities": args.main + 9 * args.others,
            "load_identities_per_s": round(load_rate),
            **batch_figures(rounds),
            **single,
            **paced,
            "api_workers": args.workers,
        }
    )


if __name__ == "__main__":
    main()
