"""Identity rules: hash what comes in, answer look-ups, erase on request. Never commits."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from functools import lru_cache

from sqlalchemy.ext.asyncio import AsyncSession

from athos_identity import observability
from athos_identity.audit import service as audit
from athos_identity.connectors import repository as connectors
from athos_identity.identity import repository
from athos_identity.identity.hashing import (
    HashedIdentifier,
    IdentifierKind,
    InvalidIdentifier,
    TenantHasher,
    identifier_digest,
    parse_prehashed,
)
from athos_identity.identity.normalize import normalize_email, normalize_phone
from athos_identity.identity.records import CustomerRecord, HashedCustomer, hash_customer
from athos_identity.identity.schemas import (
    CustomerSelector,
    EraseOut,
    IdentifierIn,
    IdentifierType,
    IngestOut,
    ItemError,
    RecordIn,
)
from athos_identity.kit.coalesce import abandon
from athos_identity.kit.errors import InvalidInput, NotFound
from athos_identity.sales import repository as sales
from athos_identity.settings import get_settings
from athos_identity.tenants.service import Caller

CURRENT_KEY_VERSION = 1


def hasher_for(tenant_id: uuid.UUID) -> TenantHasher:
    return _hasher(get_settings().master_key, tenant_id, CURRENT_KEY_VERSION)


@lru_cache(maxsize=4096)
def _hasher(master_key: bytes, tenant_id: uuid.UUID, version: int) -> TenantHasher:
    # Shared: a hasher is never changed once keyed (it copies its HMAC states per use).
    return TenantHasher(master_key, tenant_id, version)


def _digest(item: IdentifierIn, region: str | None) -> tuple[IdentifierKind, bytes]:
    """An identifier's kind and the SHA-256 of its normalized form (raises InvalidIdentifier)."""
    value = item["value"]
    match item["type"]:
        case IdentifierType.email:
            return IdentifierKind.EMAIL, identifier_digest(normalize_email(value))
        case IdentifierType.phone:
            phone = normalize_phone(value, item.get("region") or region)
            return IdentifierKind.PHONE, identifier_digest(phone)
        case IdentifierType.email_sha256:
            return IdentifierKind.EMAIL, parse_prehashed(value)
        case IdentifierType.phone_sha256:
            return IdentifierKind.PHONE, parse_prehashed(value)


def _hash_each(
    items: Sequence[IdentifierIn], offset: int, hasher: TenantHasher, region: str | None
) -> tuple[list[HashedIdentifier], list[dict[str, object]]]:
    """The valid identifiers hashed, and an error naming each invalid one by its position in
    the request (`offset` is the position of the first item)."""
    hashed: list[HashedIdentifier] = []
    errors: list[dict[str, object]] = []
    for index, item in enumerate(items, offset):
        try:
            kind, digest = _digest(item, region)
        except InvalidIdentifier as exc:
            errors.append(
                {"index": index, "field": f"identifiers.{index}.value", "reason": exc.reason}
            )
        else:
            hashed.append(hasher.hashed(kind, digest))
    return hashed, errors


def _invalid(errors: list[dict[str, object]], count: int) -> InvalidInput:
    return InvalidInput(
        f"{len(errors)} of {count} identifiers are invalid; nothing was done.", errors=errors
    )


def hash_identifiers(caller: Caller, items: Sequence[IdentifierIn]) -> list[HashedIdentifier]:
    """Hash every identifier, or fail with a 422 naming each invalid one by position."""
    hashed, errors = _hash_each(items, 0, hasher_for(caller.tenant_id), caller.default_region)
    if errors:
        raise _invalid(errors, len(items))
    return hashed


# The answer for every identifier without customers; shared, so never changed.
_NO_MATCH: dict[str, object] = {"matched": False, "customers": []}

# Identifiers hashed before their statement leaves: hashing the next chunk then overlaps
# the database reading this one (bench/lookup.py).
LOOKUP_CHUNK = 250


async def lookup(caller: Caller, items: Sequence[IdentifierIn]) -> list[dict[str, object]]:
    """One `LookupResult`-shaped dict per identifier, in request order.

    Plain dicts, not models: building 1,000 pydantic objects per batch cost as much as
    the database query (bench/lookup.py).
    """
    hasher = hasher_for(caller.tenant_id)
    chunks: list[tuple[list[HashedIdentifier], asyncio.Future[repository.LinkIndex]]] = []
    errors: list[dict[str, object]] = []
    results: list[dict[str, object]] = []
    try:
        for offset in range(0, len(items), LOOKUP_CHUNK):
            chunk = items[offset : offset + LOOKUP_CHUNK]
            hashed, invalid = _hash_each(chunk, offset, hasher, caller.default_region)
            errors += invalid
            if not errors:  # past an invalid item, only hashed to name every other one
                read = repository.submit_find_links(caller.tenant_id, _keys(hashed))
                chunks.append((hashed, read))
                await asyncio.sleep(0)  # lets the statement leave before the next chunk
        if errors:
            raise _invalid(errors, len(items))
        for hashed, read in chunks:
            links = await read
            for identifier in hashed:
                found = links.get((identifier.kind, identifier.key))
                results.append({"matched": True, "customers": found} if found else _NO_MATCH)
    finally:  # invalid, cancelled, or a read failed: reads not yet taken are not wanted
        for _, read in chunks:
            abandon(read)
    observability.count_lookups(len(results), sum(r is not _NO_MATCH for r in results))
    return results


def _keys(hashed: list[HashedIdentifier]) -> list[bytes]:
    return [identifier.key for identifier in hashed]


async def ingest(session: AsyncSession, caller: Caller, records: Sequence[RecordIn]) -> IngestOut:
    """Store a batch through the tenant's `api` connector; invalid identifiers are skipped."""
    tenant_id = caller.tenant_id
    hasher = hasher_for(tenant_id)
    region = caller.default_region
    hashed: list[HashedCustomer] = []
    errors: list[ItemError] = []
    for index, record in enumerate(records):
        customer = hash_customer(
            CustomerRecord(
                customer_id=record.customer_id,
                emails=tuple(record.emails),
                phones=tuple(record.phones),
                region=record.default_region or region,
            ),
            hasher,
        )
        hashed.append(customer)
        errors.extend(
            ItemError(index=index, field=r.field, reason=r.reason) for r in customer.rejected
        )
    connector_id = await repository.api_connector_id(session, tenant_id)
    changes = await repository.replace_customer_links(session, tenant_id, connector_id, hashed)
    return IngestOut(
        records=len(records),
        identifiers_stored=sum(len(c.identifiers) for c in hashed),
        links_added=changes.added,
        links_removed=changes.removed,
        skipped=len(errors),
        errors=errors,
    )


async def erase(
    session: AsyncSession,
    caller: Caller,
    identifiers: Sequence[IdentifierIn],
    customers: Sequence[CustomerSelector],
) -> EraseOut:
    """Forget identifiers and customers: their links, and their hashes on orders."""
    if not identifiers and not customers:
        raise InvalidInput("Name at least one identifier or customer to erase.")
    tenant_id = caller.tenant_id
    await _require_own_connectors(session, tenant_id, customers)
    links = orders = 0
    if identifiers:
        keys = [h.key for h in hash_identifiers(caller, identifiers)]
        links += await repository.delete_links_by_keys(session, tenant_id, keys)
        orders += await sales.forget_identifiers(session, tenant_id, keys)
    for selector in customers:
        links += await repository.delete_links_of_customer(
            session, tenant_id, selector.customer_id, selector.connector_id
        )
        orders += await sales.forget_customer_identifiers(
            session, tenant_id, selector.customer_id, selector.connector_id
        )
    await audit.record(
        session,
        tenant_id,
        "identity.erase",
        None,
        identifiers=len(identifiers),
        customers=len(customers),
        links_removed=links,
        orders_scrubbed=orders,
    )
    return EraseOut(links_removed=links, orders_scrubbed=orders)


async def _require_own_connectors(
    session: AsyncSession, tenant_id: uuid.UUID, customers: Sequence[CustomerSelector]
) -> None:
    """A selector naming a connector the tenant does not have is a 404 (DESIGN §2.2: another
    tenant's id looks like no id at all), not a silent "nothing erased" that would let a
    caller believe a shopper was forgotten."""
    named = {s.connector_id for s in customers if s.connector_id is not None}
    unknown = {
        connector_id
        for connector_id in named
        if await connectors.get_connector(session, tenant_id, connector_id) is None
    }
    errors: list[dict[str, object]] = [
        {"index": index, "field": f"customers.{index}.connector_id", "reason": "unknown"}
        for index, selector in enumerate(customers)
        if selector.connector_id in unknown
    ]
    if errors:
        fields = ", ".join(str(e["field"]) for e in errors)
        raise NotFound(f"No connector with this id ({fields}); nothing was erased.", errors=errors)
