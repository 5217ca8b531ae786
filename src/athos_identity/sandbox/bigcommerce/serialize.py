"""Records -> BigCommerce JSON: V3 customers (ISO dates), V2 orders (RFC 2822 dates)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

from athos_identity.sandbox.data import (
    PRODUCT_COUNT,
    Customer,
    LineItem,
    Order,
    product_price_cents,
    product_title,
)

LINES_EMBEDDED_PER_CONSIGNMENT = 50
TRUNCATED_LINES_WARNING = (
    "Not all line items of this consignment are returned with this response, only 50 are "
    "included. Please use the `/v2/orders/{order_id}/products` endpoint to fetch all line items."
)
ORDER_STATUSES: dict[str, tuple[int, str, str]] = {
    # financial status -> (status_id, status, payment_status)
    "PAID": (11, "Awaiting Fulfillment", "captured"),
    "PENDING": (1, "Pending", ""),
    "AUTHORIZED": (7, "Awaiting Payment", "authorized"),
    "REFUNDED": (4, "Refunded", "refunded"),
    "PARTIALLY_REFUNDED": (14, "Partially Refunded", "partially refunded"),
}
COUNTRY_NAMES = {
    "US": "United States",
    "CA": "Canada",
    "GB": "United Kingdom",
    "FR": "France",
    "DE": "Germany",
}


def iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc2822(seconds: int) -> str:
    """'Tue, 20 Nov 2012 00:00:00 +0000', what V2 returns."""
    return format_datetime(datetime.fromtimestamp(seconds, tz=UTC))


def parse_date(text: str) -> int:
    """V2 and V3 filters accept ISO 8601 or RFC 2822 (and bare epoch seconds)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        parsed = parsedate_to_datetime(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


def money4(cents: int) -> str:
    """V2 money: four decimals, as strings."""
    return f"{cents // 100}.{cents % 100:02d}00"


def customer_v3(customer: Customer, country: str, *, with_addresses: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": customer.id,
        "authentication": {"force_password_reset": False},
        "company": "",
        "customer_group_id": 0,
        "email": customer.email or "",
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "notes": "",
        "phone": customer.phone or "",
        "registration_ip_address": "",
        "tax_exempt_category": "",
        "date_created": iso(customer.created_at),
        "date_modified": iso(customer.updated_at),
        "accepts_product_review_abandoned_cart_emails": customer.accepts_marketing,
        "origin_channel_id": 1,
        "channel_ids": None,
    }
    if with_addresses:
        addresses = []
        if customer.address_phone is not None:
            addresses.append(
                {
                    "id": customer.id,
                    "customer_id": customer.id,
                    "first_name": customer.first_name,
                    "last_name": customer.last_name,
                    "company": "",
                    "address1": "1 Sandbox Street",
                    "address2": "",
                    "city": "Springfield",
                    "state_or_province": "",
                    "postal_code": "00000",
                    "country": COUNTRY_NAMES.get(country, country),
                    "country_code": country,
                    "phone": customer.address_phone,
                    "address_type": "residential",
                }
            )
        body["addresses"] = addresses
        body["address_count"] = len(addresses)
    return body


def line_v2(order: Order, line: LineItem) -> dict[str, Any]:
    total = line.unit_price_cents * line.quantity
    return {
        "id": line.id,
        "order_id": order.id,
        "product_id": line.product_id,
        "variant_id": line.variant_id,
        "order_address_id": order.id,
        "name": line.title,
        "name_customer": line.title,
        "name_merchant": line.title,
        "sku": line.sku,
        "type": "physical",
        "base_price": money4(line.unit_price_cents),
        "price_ex_tax": money4(line.unit_price_cents),
        "price_inc_tax": money4(line.unit_price_cents),
        "price_tax": "0.0000",
        "base_total": money4(total),
        "total_ex_tax": money4(total),
        "total_inc_tax": money4(total),
        "total_tax": "0.0000",
        "quantity": line.quantity,
        "is_refunded": False,
        "quantity_refunded": 0,
        "refund_amount": "0.0000",
        "product_options": [],
    }


def order_v2(order: Order, country: str, base: str, *, embed_lines: bool) -> dict[str, Any]:
    status_id, status, payment_status = ORDER_STATUSES.get(
        order.financial_status, ORDER_STATUSES["PAID"]
    )
    total = money4(order.total_cents)
    billing = {
        "first_name": order.first_name,
        "last_name": order.last_name,
        "company": "",
        "street_1": "1 Sandbox Street",
        "street_2": "",
        "city": "Springfield",
        "state": "",
        "zip": "00000",
        "country": COUNTRY_NAMES.get(country, country),
        "country_iso2": country,
        "phone": order.phone or "",
        "email": order.email or "",
        "form_fields": [],
    }
    body: dict[str, Any] = {
        "id": order.id,
        "customer_id": order.customer_id or 0,  # 0 = guest checkout
        "date_created": rfc2822(order.created_at),
        "date_modified": rfc2822(order.updated_at),
        "date_shipped": "",
        "status_id": status_id,
        "status": status,
        "subtotal_ex_tax": total,
        "subtotal_inc_tax": total,
        "total_ex_tax": total,
        "total_inc_tax": total,
        "items_total": order.item_count,
        "items_shipped": 0,
        "payment_method": "Credit Card",
        "payment_status": payment_status,
        "refunded_amount": "0.0000",
        "currency_code": order.currency,
        "default_currency_code": order.currency,
        "is_deleted": False,
        "billing_address": billing,
        "products": {
            "url": f"{base}/v2/orders/{order.id}/products",
            "resource": f"/orders/{order.id}/products",
        },
        "shipping_addresses": {
            "url": f"{base}/v2/orders/{order.id}/shipping_addresses",
            "resource": f"/orders/{order.id}/shipping_addresses",
        },
        "coupons": {
            "url": f"{base}/v2/orders/{order.id}/coupons",
            "resource": f"/orders/{order.id}/coupons",
        },
    }
    if embed_lines:
        body["consignments"] = [_consignments(order, billing)]
    return body


def _consignments(order: Order, billing: dict[str, Any]) -> dict[str, Any]:
    shipping: dict[str, Any] = {
        "id": order.id,
        **{
            k: billing[k]
            for k in (
                "first_name",
                "last_name",
                "city",
                "zip",
                "country",
                "country_iso2",
                "phone",
                "email",
            )
        },
        "line_items": [
            line_v2(order, line) for line in order.lines[:LINES_EMBEDDED_PER_CONSIGNMENT]
        ],
    }
    if len(order.lines) > LINES_EMBEDDED_PER_CONSIGNMENT:
        # BigCommerce caps embedded lines and says so in-band (bigcommerce/docs#960).
        shipping["__warning__"] = {"message": TRUNCATED_LINES_WARNING}
    return {
        "pickups": [],
        "shipping": [shipping],
        "downloads": [],
        "email": {"gift_certificates": []},
    }


def product_v3(product_id: int, modified: int) -> dict[str, Any]:
    return {
        "id": product_id,
        "name": product_title(product_id),
        "type": "physical",
        "sku": f"SKU-{product_id:04d}",
        "price": product_price_cents(product_id, 0) / 100,
        "is_visible": True,
        "date_modified": iso(modified),
    }


PRODUCT_IDS = range(1, PRODUCT_COUNT + 1)
