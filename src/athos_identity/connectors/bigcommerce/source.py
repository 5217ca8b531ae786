"""BigCommerce as a pull source: V3 customers and V2 orders mapped to neutral records.

Both lists are read oldest change first (`date_modified:asc`) with keyed paging: each
page's query starts from the last `date_modified` seen, records already read are skipped
by id (`KeyedCursor`), so records changed during a pull never push an unread one out of
sight. The position is that cursor, as JSON. Orders' lines come embedded
(`include=consignments.line_items`); only orders flagged as truncated are completed from
`/v2/orders/{id}/products`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from athos_identity.connectors.bigcommerce.access import connector_client
from athos_identity.connectors.bigcommerce.client import (
    MAX_PAGE_SIZE,
    BigCommerceClient,
    BigCommerceUnavailable,
    KeyedCursor,
    parse_iso,
    parse_rfc2822,
)
from athos_identity.identity.records import CustomerRecord
from athos_identity.sales.records import OrderLine, OrderRecord
from athos_identity.sync.sources import SourcePage, Stream, TransientSourceError

PAGE_SIZE = MAX_PAGE_SIZE  # records per list request (tests make it small)


def _money(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value not in (None, "") else None
    except InvalidOperation:
        return None


def customer_record(item: dict[str, Any], region: str | None) -> CustomerRecord:
    phones = [item.get("phone") or ""]
    phones += [a.get("phone") or "" for a in item.get("addresses") or []]
    country = next(
        (a.get("country_code") for a in item.get("addresses") or [] if a.get("country_code")),
        None,
    )
    return CustomerRecord(
        customer_id=str(item["id"]),
        emails=tuple(e for e in [item.get("email") or ""] if e.strip()),
        phones=tuple(dict.fromkeys(p for p in phones if p.strip())),
        region=country or region,
    )


def embedded_lines(item: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    lines: list[dict[str, Any]] = []
    truncated = False
    for consignment in item.get("consignments") or []:
        for shipping in consignment.get("shipping") or []:
            lines += shipping.get("line_items") or []
            truncated = truncated or "__warning__" in shipping
    return lines, truncated


def order_line(line: dict[str, Any]) -> OrderLine:
    return OrderLine(
        line_id=str(line["id"]),
        quantity=int(line.get("quantity") or 0),
        product_id=str(line["product_id"]) if line.get("product_id") else None,
        variant_id=str(line["variant_id"]) if line.get("variant_id") else None,
        sku=line.get("sku") or None,
        unit_price=_money(line.get("price_inc_tax") or line.get("base_price")),
    )


def order_record(
    item: dict[str, Any], lines: list[dict[str, Any]], region: str | None
) -> OrderRecord:
    billing = item.get("billing_address") or {}
    customer_id = item.get("customer_id") or 0
    return OrderRecord(
        order_id=str(item["id"]),
        customer_id=str(customer_id) if customer_id else None,  # 0 = guest checkout
        email=billing.get("email") or None,
        phone=billing.get("phone") or None,
        region=billing.get("country_iso2") or region,
        currency=item.get("currency_code") or None,
        total=_money(item.get("total_inc_tax")),
        status=item.get("status") or None,
        placed_at=parse_rfc2822(item.get("date_created")),
        updated_at=parse_rfc2822(item.get("date_modified")),
        lines=tuple(order_line(line) for line in lines),
    )


class BigCommerceSource:
    def __init__(self, client: BigCommerceClient, region: str | None) -> None:
        self.client = client
        self.region = region

    async def pages(
        self, stream: Stream, *, since: datetime | None, position: Any
    ) -> AsyncIterator[SourcePage]:
        cursor: KeyedCursor | None = KeyedCursor.from_position(position, since)
        total: int | None = None
        counted = False
        while cursor is not None:
            try:
                if stream is Stream.customers:
                    result, cursor = await self._customers(cursor)
                else:
                    if not counted:  # V2 lists carry no total: the count, once per stream
                        total = await self.client.orders_count(modified_since=since)
                        counted = True
                    result, cursor = await self._orders(cursor, total)
            except (BigCommerceUnavailable, httpx.TransportError, json.JSONDecodeError) as exc:
                raise TransientSourceError(type(exc).__name__) from None
            yield result

    async def _customers(self, cursor: KeyedCursor) -> tuple[SourcePage, KeyedCursor | None]:
        result = await self.client.customers_after(cursor, limit=PAGE_SIZE)
        records = [customer_record(item, self.region) for item in result.items]
        modified = [d for d in (parse_iso(i.get("date_modified")) for i in result.items) if d]
        return (
            SourcePage(
                position=_position(result.after),
                customers=records,
                high_water=max(modified, default=None),
                estimated_total=result.total,
            ),
            result.after,
        )

    async def _orders(
        self, cursor: KeyedCursor, total: int | None
    ) -> tuple[SourcePage, KeyedCursor | None]:
        result = await self.client.orders_after(cursor, limit=PAGE_SIZE)
        records = []
        for item in result.items:
            lines, truncated = embedded_lines(item)
            if truncated:
                lines = await self.client.order_products(int(item["id"]))
            records.append(order_record(item, lines, self.region))
        modified = [r.updated_at for r in records if r.updated_at]
        return (
            SourcePage(
                position=_position(result.after),
                orders=records,
                high_water=max(modified, default=None),
                estimated_total=total,
            ),
            result.after,
        )


def _position(cursor: KeyedCursor | None) -> dict[str, Any] | None:
    return cursor.as_position() if cursor else None


@asynccontextmanager
async def open_bigcommerce_source(
    tenant_id: uuid.UUID, connector_id: uuid.UUID, region: str | None
) -> AsyncIterator[BigCommerceSource]:
    async with connector_client(tenant_id, connector_id) as client:
        yield BigCommerceSource(client, region)
