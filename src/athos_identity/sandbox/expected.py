"""Known answers for a generated store: which normalized identifier belongs to which ids.

The normalization here is deliberately the plain rule set of DESIGN.md §6, written
independently of the service's identity code, so tests can compare the two.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import phonenumbers

from athos_identity.sandbox.data import Customer, Order, StoreData

GMAIL_DOMAIN = "gmail.com"


def normalize_email(raw: str | None) -> str | None:
    """Trim, lowercase, Gmail dot/+tag rule; None when invalid (DESIGN.md §6)."""
    if raw is None:
        return None
    text = raw.strip().lower()
    if text.count("@") != 1:
        return None
    local, domain = text.split("@")
    if domain == GMAIL_DOMAIN:
        local = local.split("+", 1)[0].replace(".", "")
    if not local or not domain:
        return None
    return f"{local}@{domain}"


def normalize_phone(raw: str | None, region: str) -> str | None:
    """E.164 via libphonenumber, extension dropped; None when unparseable or impossible.

    A leading ``00`` is the international prefix whatever the store's country (the ITU's,
    and what shoppers abroad type), as the messaging guide documents."""
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    digits = e164[1:]
    if not (e164.startswith("+") and digits.isdigit() and 8 <= len(digits) <= 15):
        return None
    return e164


def customer_emails(customer: Customer) -> set[str]:
    normalized = normalize_email(customer.email)
    return {normalized} if normalized else set()


def customer_phones(customer: Customer, region: str) -> set[str]:
    found = (normalize_phone(raw, region) for raw in (customer.phone, customer.address_phone))
    return {phone for phone in found if phone}


@dataclass
class ExpectedAnswers:
    """Normalized identifier -> ids, and how many raw values had to be rejected."""

    customers_by_email: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    customers_by_phone: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    orders_by_email: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    orders_by_phone: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    customer_count: int = 0
    order_count: int = 0
    guest_order_count: int = 0
    invalid_emails: int = 0
    invalid_phones: int = 0

    def customers_for_email(self, raw: str) -> set[int]:
        normalized = normalize_email(raw)
        return set(self.customers_by_email.get(normalized, set())) if normalized else set()

    def customers_for_phone(self, raw: str, region: str) -> set[int]:
        normalized = normalize_phone(raw, region)
        return set(self.customers_by_phone.get(normalized, set())) if normalized else set()

    def shared_phones(self) -> dict[str, set[int]]:
        """Phones that link more than one customer (families, shared work numbers)."""
        return {phone: ids for phone, ids in self.customers_by_phone.items() if len(ids) > 1}

    def as_json(self) -> dict[str, object]:
        def listed(mapping: dict[str, set[int]]) -> dict[str, list[int]]:
            return {key: sorted(ids) for key, ids in sorted(mapping.items())}

        return {
            "customers_by_email": listed(self.customers_by_email),
            "customers_by_phone": listed(self.customers_by_phone),
            "orders_by_email": listed(self.orders_by_email),
            "orders_by_phone": listed(self.orders_by_phone),
            "customer_count": self.customer_count,
            "order_count": self.order_count,
            "guest_order_count": self.guest_order_count,
            "invalid_emails": self.invalid_emails,
            "invalid_phones": self.invalid_phones,
        }


def expected_answers(
    store: StoreData, *, include_orders: bool = True, orders_created_since: int | None = None
) -> ExpectedAnswers:
    """Walk every visible record once; O(records) time, meant for test-sized stores.

    ``orders_created_since`` mirrors Shopify's 60-day window without ``read_all_orders``.
    """
    region = store.country
    answers = ExpectedAnswers()
    for customer in store.customers.iter_by_updated():
        answers.customer_count += 1
        _add_identities(
            answers,
            customer.id,
            [customer.email],
            [customer.phone, customer.address_phone],
            region,
            is_order=False,
        )
    if include_orders:
        for order in store.orders.iter_by_updated():
            if orders_created_since is not None and order.created_at < orders_created_since:
                continue
            answers.order_count += 1
            answers.guest_order_count += order.customer_id is None
            _add_identities(answers, order.id, [order.email], [order.phone], region, is_order=True)
    return answers


def _add_identities(
    answers: ExpectedAnswers,
    record_id: int,
    emails: Iterable[str | None],
    phones: Iterable[str | None],
    region: str,
    *,
    is_order: bool,
) -> None:
    by_email = answers.orders_by_email if is_order else answers.customers_by_email
    by_phone = answers.orders_by_phone if is_order else answers.customers_by_phone
    for raw in emails:
        if raw is None:
            continue
        normalized = normalize_email(raw)
        if normalized is None:
            answers.invalid_emails += 1
        else:
            by_email[normalized].add(record_id)
    for raw in phones:
        if raw is None:
            continue
        normalized = normalize_phone(raw, region)
        if normalized is None:
            answers.invalid_phones += 1
        else:
            by_phone[normalized].add(record_id)


__all__ = [
    "ExpectedAnswers",
    "Order",
    "customer_emails",
    "customer_phones",
    "expected_answers",
    "normalize_email",
    "normalize_phone",
]
