"""Shopify GraphQL nodes -> the neutral records of DESIGN.md §5 (in memory only).

Ids: a GID `gid://shopify/Customer/123` becomes `"123"`, the numeric id the REST-shaped
webhooks carry (`webhooks.py` stores `str(payload["id"])`), so links written by a pull and
by a webhook name the same customer the same way.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from athos_identity.identity.records import CustomerRecord
from athos_identity.sales.records import OrderLine, OrderRecord

# --- the fields read, shared by bulk exports and paged connections -------------------------

CUSTOMER_FIELDS = (
    "id updatedAt defaultEmailAddress { emailAddress } "
    "defaultPhoneNumber { phoneNumber } defaultAddress { phone countryCodeV2 }"
)
ORDER_FIELDS = (
    "id email phone customer { id } createdAt updatedAt currencyCode "
    "totalPriceSet { shopMoney { amount } } displayFinancialStatus "
    "billingAddress { countryCodeV2 }"
)
LINE_FIELDS = (
    "id quantity sku product { id } variant { id } originalUnitPriceSet { shopMoney { amount } }"
)


def plain_id(gid: Any) -> str | None:
    """`gid://shopify/Kind/123` (or `…/123?x=y`) -> `"123"`; plain ids pass through."""
    if gid is None or isinstance(gid, bool):
        return None
    text = str(gid).strip()
    if not text:
        return None
    if text.startswith("gid://"):
        text = text.rsplit("/", 1)[-1].split("?", 1)[0]
    return text or None


def iso(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _money(bag: Any) -> Decimal | None:
    amount = ((bag or {}).get("shopMoney") or {}).get("amount") if isinstance(bag, dict) else None
    if amount in (None, ""):
        return None
    try:
        return Decimal(str(amount))
    except InvalidOperation:
        return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def customer_record(node: dict[str, Any], region: str | None) -> CustomerRecord:
    email = (node.get("defaultEmailAddress") or {}).get("emailAddress")
    phone = (node.get("defaultPhoneNumber") or {}).get("phoneNumber")
    address = node.get("defaultAddress") or {}
    phones = [p for p in (phone, address.get("phone")) if _text(p)]
    return CustomerRecord(
        customer_id=plain_id(node["id"]) or "",
        emails=tuple(e for e in (email,) if _text(e)),
        phones=tuple(dict.fromkeys(phones)),
        region=address.get("countryCodeV2") or region,
    )


def order_line(node: dict[str, Any]) -> OrderLine:
    try:
        quantity = int(node.get("quantity") or 0)
    except (TypeError, ValueError):
        quantity = 0
    return OrderLine(
        line_id=plain_id(node["id"]) or "",
        quantity=quantity,
        product_id=plain_id((node.get("product") or {}).get("id")),
        variant_id=plain_id((node.get("variant") or {}).get("id")),
        sku=_text(node.get("sku")),
        unit_price=_money(node.get("originalUnitPriceSet")),
    )


def order_record(
    node: dict[str, Any], lines: tuple[OrderLine, ...], region: str | None
) -> OrderRecord:
    billing = node.get("billingAddress") or {}
    return OrderRecord(
        order_id=plain_id(node["id"]) or "",
        customer_id=plain_id((node.get("customer") or {}).get("id")),  # None: a guest
        email=_text(node.get("email")),
        phone=_text(node.get("phone")),
        region=billing.get("countryCodeV2") or region,
        currency=_text(node.get("currencyCode")),
        total=_money(node.get("totalPriceSet")),
        status=_text(node.get("displayFinancialStatus")),
        placed_at=iso(node.get("createdAt")),
        updated_at=iso(node.get("updatedAt")),
        lines=lines,
    )
