from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel


class OrderLineOut(BaseModel):
    line_id: str
    product_id: str | None
    variant_id: str | None
    sku: str | None
    quantity: int
    unit_price: Decimal | None


class OrderOut(BaseModel):
    """An order as sales data: what was bought, when, for how much — no buyer details."""

    connector_id: uuid.UUID
    order_id: str
    currency: str | None
    total: Decimal | None
    status: str | None
    placed_at: datetime | None
    updated_at: datetime | None
    lines: list[OrderLineOut]


class CustomerOrdersOut(BaseModel):
    customer_id: str
    orders: list[OrderOut]
