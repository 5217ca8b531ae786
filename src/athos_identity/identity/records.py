"""The platform-neutral seam of DESIGN.md §5: raw records in, hashed records out.

A `CustomerRecord` holds raw e-mails and phones and lives only in memory, between a platform
client (or a request body) and `hash_customer`; a `HashedCustomer` carries no PII.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from athos_identity.identity.hashing import (
    HashedIdentifier,
    InvalidIdentifier,
    TenantHasher,
    hash_email,
    hash_phone,
)


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    customer_id: str
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    region: str | None = None  # for phones written without a country code

    def __repr__(self) -> str:  # never print the raw identifiers
        return f"CustomerRecord(customer_id={self.customer_id!r}, emails=…, phones=…)"


@dataclass(frozen=True, slots=True)
class Rejected:
    """An identifier that could not be normalized: where it was and why, never what."""

    field: str  # e.g. "emails.0"
    reason: str


@dataclass(frozen=True, slots=True)
class HashedCustomer:
    customer_id: str
    identifiers: tuple[HashedIdentifier, ...]
    rejected: tuple[Rejected, ...] = field(default=())


def hash_customer(record: CustomerRecord, hasher: TenantHasher) -> HashedCustomer:
    identifiers: dict[HashedIdentifier, None] = {}  # ordered, deduplicated
    rejected: list[Rejected] = []
    for index, email in enumerate(record.emails):
        try:
            identifiers[hash_email(email, hasher)] = None
        except InvalidIdentifier as exc:
            rejected.append(Rejected(f"emails.{index}", exc.reason))
    for index, phone in enumerate(record.phones):
        try:
            identifiers[hash_phone(phone, record.region, hasher)] = None
        except InvalidIdentifier as exc:
            rejected.append(Rejected(f"phones.{index}", exc.reason))
    return HashedCustomer(record.customer_id, tuple(identifiers), tuple(rejected))
