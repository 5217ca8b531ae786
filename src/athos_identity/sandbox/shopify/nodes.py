"""Records -> GraphQL node dicts. Nested connections are callables so they cost nothing
unless selected (graphql-core's default resolver calls them with the field arguments)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from athos_identity.sandbox.data import Customer, LineItem, Order, money
from athos_identity.sandbox.shopify.store import ShopifyShop

COUNTRY_NAMES = {
    "US": "United States",
    "CA": "Canada",
    "GB": "United Kingdom",
    "FR": "France",
    "DE": "Germany",
}


def gid(kind: str, number: int) -> str:
    return f"gid://shopify/{kind}/{number}"


def gid_number(value: str, kind: str) -> int | None:
    prefix = f"gid://shopify/{kind}/"
    if not value.startswith(prefix) or not value[len(prefix) :].isdigit():
        return None
    return int(value[len(prefix) :])


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def encode_cursor(payload: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()


def decode_cursor(cursor: str) -> dict[str, Any] | None:
    try:
        decoded = json.loads(base64.b64decode(cursor.encode(), validate=True))
    except (ValueError, TypeError):
        return None
    return decoded if isinstance(decoded, dict) else None


def money_bag(cents: int, currency: str) -> dict[str, Any]:
    amount = {"amount": money(cents), "currencyCode": currency}
    return {"shopMoney": amount, "presentmentMoney": amount}


def page_info(has_next: bool, has_previous: bool, cursors: list[str]) -> dict[str, Any]:
    return {
        "hasNextPage": has_next,
        "hasPreviousPage": has_previous,
        "startCursor": cursors[0] if cursors else None,
        "endCursor": cursors[-1] if cursors else None,
    }


def connection(
    nodes: list[dict[str, Any]], cursors: list[str], has_next: bool, has_previous: bool
) -> dict[str, Any]:
    return {
        "nodes": nodes,
        "edges": [{"cursor": c, "node": n} for c, n in zip(cursors, nodes, strict=True)],
        "pageInfo": page_info(has_next, has_previous, cursors),
    }


def customer_node(customer: Customer, shop: ShopifyShop) -> dict[str, Any]:
    country = shop.data.country
    address = None
    if customer.address_phone is not None or customer.phone is not None:
        address = {
            "id": gid("MailingAddress", customer.id),
            "phone": customer.address_phone,
            "firstName": customer.first_name,
            "lastName": customer.last_name,
            "address1": "1 Sandbox Street",
            "city": "Springfield",
            "country": COUNTRY_NAMES.get(country),
            "countryCodeV2": country,
        }
    return {
        "id": gid("Customer", customer.id),
        "legacyResourceId": str(customer.id),
        "firstName": customer.first_name,
        "lastName": customer.last_name,
        "displayName": f"{customer.first_name} {customer.last_name}".strip() or "Guest",
        "email": customer.email,
        "phone": customer.phone,
        "createdAt": iso(customer.created_at),
        "updatedAt": iso(customer.updated_at),
        "numberOfOrders": "0",
        "defaultEmailAddress": None
        if customer.email is None
        else {
            "emailAddress": customer.email,
            "marketingState": "SUBSCRIBED" if customer.accepts_marketing else "NOT_SUBSCRIBED",
        },
        "defaultPhoneNumber": None
        if customer.phone is None
        else {
            "phoneNumber": customer.phone,
            "marketingState": "NOT_SUBSCRIBED",
        },
        "defaultAddress": address,
    }


def line_item_node(line: LineItem, currency: str) -> dict[str, Any]:
    return {
        "id": gid("LineItem", line.id),
        "name": line.title,
        "title": line.title,
        "quantity": line.quantity,
        "sku": line.sku,
        "product": {"id": gid("Product", line.product_id), "title": line.title},
        "variant": {
            "id": gid("ProductVariant", line.variant_id),
            "sku": line.sku,
            "title": line.sku.rsplit("-", 1)[-1],
        },
        "originalUnitPriceSet": money_bag(line.unit_price_cents, currency),
        "originalTotalSet": money_bag(line.unit_price_cents * line.quantity, currency),
    }


def line_items_connection(order: Order, first: int | None, after: str | None) -> dict[str, Any]:
    """All lines when ``first`` is None (bulk exports ignore page sizes)."""
    start = 0
    if after:
        decoded = decode_cursor(after) or {}
        start = int(decoded.get("offset", -1)) + 1
    stop = len(order.lines) if first is None else start + first
    window = order.lines[start:stop]
    nodes = [line_item_node(line, order.currency) for line in window]
    cursors = [encode_cursor({"offset": start + i}) for i in range(len(window))]
    return connection(nodes, cursors, stop < len(order.lines), start > 0)


def order_node(order: Order, shop: ShopifyShop) -> dict[str, Any]:
    def customer(_info: Any = None) -> dict[str, Any] | None:
        if order.customer_id is None:
            return None
        found = shop.data.customers.get(order.customer_id)
        return customer_node(found, shop) if found else None

    def line_items(
        _info: Any = None, first: int | None = None, after: str | None = None, **_: Any
    ) -> dict[str, Any]:
        return line_items_connection(order, first, after)

    return {
        "id": gid("Order", order.id),
        "legacyResourceId": str(order.id),
        "name": f"#{order.number}",
        "email": order.email,
        "phone": order.phone,
        "customer": customer,
        "createdAt": iso(order.created_at),
        "updatedAt": iso(order.updated_at),
        "processedAt": iso(order.created_at),
        "currencyCode": order.currency,
        "totalPriceSet": money_bag(order.total_cents, order.currency),
        "subtotalPriceSet": money_bag(order.total_cents, order.currency),
        "displayFinancialStatus": order.financial_status,
        "billingAddress": {
            "phone": order.phone,
            "firstName": order.first_name,
            "lastName": order.last_name,
            "countryCodeV2": shop.data.country,
            "country": COUNTRY_NAMES.get(shop.data.country),
        },
        "lineItems": line_items,
    }
