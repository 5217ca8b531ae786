"""Orders at the seam between platform clients and storage (DESIGN.md §5).

`OrderRecord` may hold the buyer's raw e-mail and phone, in memory only; `hash_order`
turns it into a `HashedOrder` that carries keyed hashes and no personal data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from athos_identity.identity.hashing import InvalidIdentifier, TenantHasher, hash_email, hash_phone


@dataclass(frozen=True, slots=True)
class OrderLine:
    line_id: str
    quantity: int
    product_id: str | None = None
    variant_id: str | None = None
    sku: str | None = None
    unit_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class OrderRecord:
    order_id: str
    customer_id: str | None  # None for guest checkouts
    email: str | None = None
    phone: str | None = None
    region: str | None = None
    currency: str | None = None
    total: Decimal | None = None
    status: str | None = None
    placed_at: datetime | None = None
    updated_at: datetime | None = None
    lines: tuple[OrderLine, ...] = ()

    def __repr__(self) -> str:  # never print the buyer's identifiers
        return f"OrderRecord(order_id={self.order_id!r}, lines={len(self.lines)})"


@dataclass(frozen=True, slots=True)
class HashedOrder:
    order_id: str
    customer_id: str | None
    email_key: bytes | None
    phone_key: bytes | None
    key_version: int
    currency: str | None
    total: Decimal | None
    status: str | None
    placed_at: datetime | None
    updated_at: datetime | None
    lines: tuple[OrderLine, ...]
    skipped: int  # identifiers that could not be normalized


def hash_order(order: OrderRecord, hasher: TenantHasher) -> HashedOrder:
    skipped = 0
    email_key = phone_key = None
    if order.email:
        try:
            email_key = hash_email(order.email, hasher).key
        except InvalidIdentifier:
            skipped += 1
    if order.phone:
        try:
            phone_key = hash_phone(order.phone, order.region, hasher).key
        except InvalidIdentifier:
            skipped += 1
    return HashedOrder(
        order_id=order.order_id,
        customer_id=order.customer_id,
        email_key=email_key,
        phone_key=phone_key,
        key_version=hasher.version,
        currency=order.currency,
        total=order.total,
        status=order.status,
        placed_at=order.placed_at,
        updated_at=order.updated_at,
        lines=order.lines,
        skipped=skipped,
    )
