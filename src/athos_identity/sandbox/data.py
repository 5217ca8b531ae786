"""Seeded, lazy generator of customers and orders with real-world mess.

Nothing is stored for an unmodified record: customer ``i`` and order ``k`` are pure functions
of ``(seed, index)``, so a store of 1,000,000 customers costs a few hundred bytes until records
are created, updated or deleted through the sandbox admin API. Those changes live in small
overlays (:class:`RecordStore`).

``updated_at`` grows with the index (several records may share a second), so "sorted by
updated_at" is the natural order of the indices and the first record at or after a date is an
arithmetic computation, not a scan. Changed records leave their base position and move to a
tail that sorts after every generated record, as on the real platforms.
"""

from __future__ import annotations

import hashlib
import struct
import unicodedata
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Generic, Protocol, TypeVar

# --- deterministic randomness ---------------------------------------------------------------


class Draw:
    """A stream of pseudo-random choices from BLAKE2b digests of ``(key, stream, index)``.

    One 64-byte digest yields sixteen 32-bit words; hashing again refills. This is several
    times cheaper than seeding ``random.Random`` per record, which is what keeps iterating a
    million customers fast. Modulo bias is negligible for the small ranges used here.
    """

    __slots__ = ("_digest", "_position", "_words")

    def __init__(self, key: bytes, stream: bytes, index: int) -> None:
        self._digest = hashlib.blake2b(
            index.to_bytes(8, "little", signed=False), digest_size=64, key=key, person=stream
        ).digest()
        self._words = _SIXTEEN_WORDS.unpack(self._digest)
        self._position = 0

    def _word(self) -> int:
        position = self._position
        if position == 16:
            self._digest = hashlib.blake2b(self._digest, digest_size=64).digest()
            self._words = _SIXTEEN_WORDS.unpack(self._digest)
            position = 0
        self._position = position + 1
        return self._words[position]

    def below(self, n: int) -> int:
        """Integer in ``[0, n)`` for ``n`` well under 2**32."""
        return self._word() % n if n > 1 else 0

    def percent(self, p: float) -> bool:
        """True with probability ``p`` percent."""
        return self._word() % 10_000 < p * 100

    def pick(self, options: tuple[str, ...]) -> str:
        return options[self._word() % len(options)]

    def digits(self, count: int) -> str:
        if count > 9:
            return self.digits(count - 9) + self.digits(9)
        return str(self._word() % 10**count).zfill(count)


_SIXTEEN_WORDS = struct.Struct("<16I")


# --- reference vocab (unicode on purpose) ---------------------------------------------------

FIRST_NAMES: tuple[str, ...] = (
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "David",
    "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas",
    "Sarah", "Charles", "Karen", "Olivia", "Emma", "Amelia", "Oliver", "George", "Harry",
    "Jack", "Noah", "Léa", "Chloé", "Zoë", "José", "Hélène", "François", "Renée", "Mathéo",
    "Søren", "Björn", "Åsa", "Łukasz", "Małgorzata", "Jürgen", "Müller", "Ömer", "Çağla",
    "Ngozi", "Aarav", "Priya", "Mei", "Hiroshi", "Иван", "Ольга", "李", "Ana", "Sofía",
)  # fmt: skip
LAST_NAMES: tuple[str, ...] = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Wilson",
    "Taylor", "Clark", "Lewis", "Walker", "Hall", "Young", "King", "Wright", "Scott", "Green",
    "Martin", "Bernard", "Dubois", "Lefèvre", "Moreau", "Girard", "Petit", "Fournier",
    "O'Brien", "MacDonald", "Núñez", "Peña", "Schröder", "Weiß", "Kowalski", "Nguyễn",
    "Øvergaard", "Åberg", "Sánchez", "Çelik", "Tanaka", "Patel", "Okafor", "Петров", "王",
)  # fmt: skip

COMMON_DOMAINS: tuple[str, ...] = (
    "gmail.com", "gmail.com", "gmail.com", "gmail.com", "gmail.com", "gmail.com", "gmail.com",
    "yahoo.com", "yahoo.com", "hotmail.com", "hotmail.com", "outlook.com", "outlook.com",
    "icloud.com", "aol.com", "proton.me", "googlemail.com",
)  # fmt: skip
COUNTRY_DOMAINS: dict[str, tuple[str, ...]] = {
    "US": ("comcast.net", "verizon.net", "att.net", "example.com"),
    "CA": ("rogers.com", "shaw.ca", "example.ca"),
    "GB": ("btinternet.com", "yahoo.co.uk", "sky.com", "example.co.uk"),
    "FR": ("orange.fr", "free.fr", "laposte.net", "wanadoo.fr", "example.fr"),
    "DE": ("web.de", "gmx.de", "t-online.de", "example.de"),
}
CURRENCIES: dict[str, str] = {"US": "USD", "CA": "CAD", "GB": "GBP", "FR": "EUR", "DE": "EUR"}
COUNTRY_CALLING_CODES: dict[str, str] = {"US": "1", "CA": "1", "GB": "44", "FR": "33", "DE": "49"}
SUPPORTED_COUNTRIES = tuple(CURRENCIES)

FINANCIAL_STATUSES: tuple[str, ...] = (
    "PAID", "PAID", "PAID", "PAID", "PAID", "PAID", "PAID", "PAID", "PAID", "PAID", "PAID",
    "PAID", "PAID", "PAID", "PAID", "PAID", "PENDING", "AUTHORIZED", "REFUNDED",
    "PARTIALLY_REFUNDED",
)  # fmt: skip
PRODUCT_COUNT = 200
VARIANTS_PER_PRODUCT = 3
PRODUCT_WORDS: tuple[str, ...] = (
    "Linen", "Wool", "Cotton", "Merino", "Denim", "Canvas", "Leather", "Silk", "Cashmere",
    "Shirt", "Scarf", "Jacket", "Tote", "Sneaker", "Beanie", "Sock", "Dress", "Mug", "Candle",
)  # fmt: skip

INVALID_EMAILS: tuple[str, ...] = (
    "not-an-email", "john.smith(at)gmail.com", "jane@@example.com", "a@b@example.com",
    "+newsletter@gmail.com", "...@gmail.com", "   ", "mailto:", "n/a",
)  # fmt: skip
INVALID_PHONES: tuple[str, ...] = (
    "12345", "n/a", "000", "+1 555", "call me", "+44 20 7946 0018 99 99 99 99", "-", "tbd",
)  # fmt: skip

DAY = 86_400
CUSTOMER_HISTORY_SECONDS = 3 * 365 * DAY
ORDER_HISTORY_SECONDS = 400 * DAY
# Orders are created up to this long before their last update; callers that filter on
# created_at only need to check records in this band near the cutoff one by one.
MAX_ORDER_UPDATE_LAG_SECONDS = 2 * DAY
# Generated history stops this long before the store is created, so every change made
# through the admin API sorts after the generated records.
HISTORY_GAP_SECONDS = 3600


# --- records --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Customer:
    id: int
    first_name: str
    last_name: str
    email: str | None  # raw, as a merchant typed it: may be messy or invalid
    phone: str | None  # raw, national or international format, maybe invalid
    address_phone: str | None  # the default address' phone, often another format
    created_at: int  # epoch seconds, UTC
    updated_at: int
    accepts_marketing: bool = False


@dataclass(frozen=True, slots=True)
class LineItem:
    id: int
    product_id: int
    variant_id: int
    sku: str
    title: str
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True, slots=True)
class Order:
    id: int
    number: int
    customer_id: int | None  # None for a guest checkout
    email: str | None
    phone: str | None
    first_name: str
    last_name: str
    created_at: int
    updated_at: int
    currency: str
    financial_status: str
    lines: tuple[LineItem, ...]

    @property
    def total_cents(self) -> int:
        return sum(line.unit_price_cents * line.quantity for line in self.lines)

    @property
    def item_count(self) -> int:
        return sum(line.quantity for line in self.lines)


class HasKey(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def updated_at(self) -> int: ...


R = TypeVar("R", Customer, Order)


def money(cents: int) -> str:
    """Platform-style decimal string: 1250 -> '12.50'."""
    return f"{cents // 100}.{cents % 100:02d}"


# --- timeline -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Timeline:
    """``count`` timestamps spread evenly (non-decreasing) over ``[start, start + span)``."""

    start: int
    span: int
    count: int

    def at(self, index: int) -> int:
        return self.start + (index * self.span) // max(self.count, 1)

    def first_index_at_or_after(self, moment: int) -> int:
        """Smallest index whose timestamp is >= moment (``count`` when none is)."""
        offset = moment - self.start
        if offset <= 0:
            return 0
        if self.span <= 0:
            return self.count
        # floor(i*span/count) >= offset  <=>  i >= ceil(offset*count/span)
        index = -(-(offset * self.count) // self.span)
        return min(index, self.count)

    @property
    def end(self) -> int:
        return self.start + self.span


# --- phones and e-mails ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    """A phone as digits; ``country`` is where it is registered."""

    country: str
    national: str  # national significant number, no trunk prefix


def _base_phone(draw: Draw, country: str) -> PhoneNumber:
    if country in ("US", "CA"):
        area = draw.pick(("415", "212", "312", "646", "617", "303", "206", "416", "604", "512"))
        exchange = str(200 + draw.below(800))
        return PhoneNumber(country, area + exchange + draw.digits(4))
    if country == "GB":
        if draw.percent(50):
            return PhoneNumber(country, "7700" + draw.digits(6))
        return PhoneNumber(country, "207946" + draw.digits(4))
    if country == "FR":
        return PhoneNumber(country, draw.pick(("6", "7", "1", "4")) + draw.digits(8))
    # DE
    if draw.percent(50):
        return PhoneNumber(country, "151" + draw.digits(8))
    return PhoneNumber(country, "30" + draw.digits(7))


def _group(text: str, sizes: tuple[int, ...], sep: str = " ") -> str:
    parts, position = [], 0
    for size in sizes:
        parts.append(text[position : position + size])
        position += size
    if position < len(text):
        parts.append(text[position:])
    return sep.join(part for part in parts if part)


def _national_format(phone: PhoneNumber, style: int) -> str:
    n = phone.national
    if phone.country in ("US", "CA"):
        return (
            f"({n[:3]}) {n[3:6]}-{n[6:]}",
            f"{n[:3]}-{n[3:6]}-{n[6:]}",
            f"{n[:3]}.{n[3:6]}.{n[6:]}",
            n,
            f"1-{n[:3]}-{n[3:6]}-{n[6:]}",
        )[style % 5]
    if phone.country == "GB":
        mobile = n.startswith("7")
        grouped = _group("0" + n, (5, 6) if mobile else (3, 4, 4))
        bracketed = f"(0{n[:4]}) {n[4:]}" if mobile else f"(0{n[:2]}) {n[2:6]} {n[6:]}"
        return (grouped, "0" + n, bracketed, grouped.replace(" ", "-"))[style % 4]
    if phone.country == "FR":
        grouped = _group("0" + n, (2, 2, 2, 2, 2))
        return (grouped, "0" + n, grouped.replace(" ", "."), grouped.replace(" ", "-"))[style % 4]
    grouped = _group("0" + n, (4, 8) if n.startswith("1") else (3, 8))
    return (grouped, "0" + n, grouped.replace(" ", "/"))[style % 3]


def _international_format(phone: PhoneNumber, style: int) -> str:
    code = COUNTRY_CALLING_CODES[phone.country]
    n = phone.national
    spaced = _group(n, (3, 3, 4)) if code == "1" else _group(n, (1, 2, 2, 2, 2))
    if phone.country == "GB":
        spaced = _group(n, (4, 6)) if n.startswith("7") else _group(n, (2, 4, 4))
    return (
        f"+{code} {spaced}",
        f"+{code}{n}",
        f"00{code} {spaced}",
        f"+{code} (0){n}" if code != "1" else f"+1 ({n[:3]}) {n[3:6]}-{n[6:]}",
        f"00{code}{n}",
    )[style % 5]


def format_phone(phone: PhoneNumber, store_country: str, draw: Draw) -> str:
    """A realistic rendering; foreign numbers always carry their country code."""
    same_plan = COUNTRY_CALLING_CODES[phone.country] == COUNTRY_CALLING_CODES[store_country]
    if same_plan and draw.percent(65):
        text = _national_format(phone, draw.below(8))
    else:
        text = _international_format(phone, draw.below(5))
    if draw.percent(4):
        text += draw.pick((" ext. ", " x", " ext ", ";ext=")) + str(1 + draw.below(999))
    if draw.percent(3):
        text = f" {text} "
    return text


_UNDECOMPOSABLE = str.maketrans(
    {"Ł": "L", "ł": "l", "Ø": "O", "ø": "o", "ß": "ss", "Æ": "Ae", "æ": "ae", "Đ": "D", "đ": "d"}
)


@lru_cache(maxsize=512)
def _ascii_fold(name: str) -> str:
    name = name.translate(_UNDECOMPOSABLE)
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return "".join(ch for ch in folded.lower() if ch.isalnum())


@dataclass(frozen=True, slots=True)
class Person:
    """Who stands behind one or more records: the source of names, mailbox and phone."""

    first_name: str
    last_name: str
    local: str  # canonical mailbox local part (lowercase)
    domain: str
    phone: PhoneNumber


def make_person(key: bytes, index: int, store_country: str) -> Person:
    draw = Draw(key, b"person", index)
    first = draw.pick(FIRST_NAMES)
    last = draw.pick(LAST_NAMES)
    first_ascii = _ascii_fold(first) or f"user{index}"
    last_ascii = _ascii_fold(last) or f"n{index % 1000}"
    style = draw.below(6)
    local = (
        f"{first_ascii}.{last_ascii}",
        f"{first_ascii}{last_ascii}",
        f"{first_ascii[0]}.{last_ascii}",
        f"{first_ascii}_{last_ascii}",
        f"{first_ascii}.{last_ascii}{draw.below(100)}",
        f"{last_ascii}{first_ascii}{1950 + draw.below(60)}",
    )[style]
    # A unique suffix keeps distinct people distinct even when names collide.
    local = f"{local}{index}"
    if draw.percent(2) and first != first_ascii.capitalize():
        local = f"{first.lower()}{index}"  # an internationalised mailbox (EAI), kept unicode
    domain = draw.pick(_DOMAINS_BY_COUNTRY[store_country])
    phone_country = store_country
    if draw.percent(5):
        phone_country = draw.pick(_OTHER_COUNTRIES[store_country])
    return Person(first, last, local, domain, _base_phone(draw, phone_country))


_DOMAINS_BY_COUNTRY = {c: COMMON_DOMAINS + COUNTRY_DOMAINS[c] for c in SUPPORTED_COUNTRIES}
_OTHER_COUNTRIES = {c: tuple(o for o in SUPPORTED_COUNTRIES if o != c) for c in SUPPORTED_COUNTRIES}


def messy_email(person: Person, draw: Draw) -> str:
    """The person's mailbox the way someone typed it this time."""
    if draw.percent(1.5):
        return draw.pick(INVALID_EMAILS)
    local, domain = person.local, person.domain
    if domain == "gmail.com" and draw.percent(25):
        # Gmail ignores dots: j.o.hn and john are the same mailbox.
        cut = 1 + draw.below(max(len(local) - 1, 1))
        local = local.replace(".", "") if draw.percent(50) else f"{local[:cut]}.{local[cut:]}"
    if draw.percent(8):
        local = f"{local}+{draw.pick(('shop', 'promo', 'news', 'orders', '2024'))}"
    text = f"{local}@{domain}"
    casing = draw.below(100)
    if casing < 10:
        text = text.title()
    elif casing < 14:
        text = text.upper()
    elif casing < 20:
        text = f"{local.capitalize()}@{domain.capitalize()}"
    if draw.percent(4):
        text = draw.pick((" ", "  ", "\t")) + text + draw.pick(("", " ", "\n"))
    return text


# --- generator ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GeneratorSpec:
    """Everything a generated store is a function of."""

    seed: int
    name: str  # shop domain or store hash: different stores get different people
    country: str
    customers: int
    orders: int
    anchor: int  # epoch seconds: generated history ends HISTORY_GAP_SECONDS before this
    customer_id_offset: int = 0
    order_id_offset: int = 0

    @property
    def key(self) -> bytes:
        material = f"{self.seed}:{self.name}".encode()
        return hashlib.blake2b(material, digest_size=32).digest()


class Generator:
    """Pure functions index -> record for one store."""

    def __init__(self, spec: GeneratorSpec) -> None:
        if spec.country not in SUPPORTED_COUNTRIES:
            raise ValueError(f"unsupported country {spec.country!r}; use {SUPPORTED_COUNTRIES}")
        self.spec = spec
        self._key = spec.key
        end = spec.anchor - HISTORY_GAP_SECONDS
        self.customer_timeline = Timeline(
            end - CUSTOMER_HISTORY_SECONDS, CUSTOMER_HISTORY_SECONDS, spec.customers
        )
        self.order_timeline = Timeline(
            end - ORDER_HISTORY_SECONDS, ORDER_HISTORY_SECONDS, spec.orders
        )
        self.currency = CURRENCIES[spec.country]

    # ids ----------------------------------------------------------------------------------
    def customer_id(self, index: int) -> int:
        return self.spec.customer_id_offset + index + 1

    def customer_index(self, customer_id: int) -> int | None:
        index = customer_id - self.spec.customer_id_offset - 1
        return index if 0 <= index < self.spec.customers else None

    def order_id(self, index: int) -> int:
        return self.spec.order_id_offset + index + 1

    def order_index(self, order_id: int) -> int | None:
        index = order_id - self.spec.order_id_offset - 1
        return index if 0 <= index < self.spec.orders else None

    # people -------------------------------------------------------------------------------
    def person(self, person_index: int) -> Person:
        return make_person(self._key, person_index, self.spec.country)

    def _customer_person_index(self, index: int, draw: Draw) -> int:
        # ~3% of customers are a second account of an earlier customer's person.
        if index > 10 and draw.percent(3):
            return draw.below(index)
        return index

    # customers ----------------------------------------------------------------------------
    def customer(self, index: int) -> Customer:
        draw = Draw(self._key, b"customer", index)
        person = self.person(self._customer_person_index(index, draw))
        email = messy_email(person, draw) if draw.percent(92) else None
        phone_owner = person
        if index > 10 and draw.percent(4):
            # A household: someone else's phone (shared phones are common in real stores).
            phone_owner = self.person(draw.below(index))
        phone = None
        if draw.percent(55):
            phone = (
                draw.pick(INVALID_PHONES)
                if draw.percent(2)
                else format_phone(phone_owner.phone, self.spec.country, draw)
            )
        address_phone = None
        if draw.percent(30):
            address_phone = format_phone(phone_owner.phone, self.spec.country, draw)
        updated_at = self.customer_timeline.at(index)
        created_at = updated_at - draw.below(30 * DAY) if draw.percent(40) else updated_at
        return Customer(
            id=self.customer_id(index),
            first_name=person.first_name,
            last_name=person.last_name,
            email=email,
            phone=phone,
            address_phone=address_phone,
            created_at=created_at,
            updated_at=updated_at,
            accepts_marketing=draw.percent(35),
        )

    # orders -------------------------------------------------------------------------------
    def order(self, index: int) -> Order:
        draw = Draw(self._key, b"order", index)
        customer_id: int | None = None
        is_guest = self.spec.customers == 0 or draw.percent(15)
        if is_guest:
            person_index = (
                draw.below(self.spec.customers)
                if self.spec.customers and draw.percent(30)
                else self.spec.customers + index
            )
            person = self.person(person_index)
            email = messy_email(person, draw) if draw.percent(95) else None
            phone = None
            if draw.percent(60):
                phone = format_phone(person.phone, self.spec.country, draw)
            first, last = person.first_name, person.last_name
        else:
            customer_index = draw.below(self.spec.customers)
            customer = self.customer(customer_index)
            customer_id = customer.id
            replay = Draw(self._key, b"customer", customer_index)
            person = self.person(self._customer_person_index(customer_index, replay))
            email = customer.email if draw.percent(70) else messy_email(person, draw)
            phone = customer.phone if draw.percent(50) else customer.address_phone
            first, last = customer.first_name, customer.last_name
        updated_at = self.order_timeline.at(index)
        created_at = updated_at - draw.below(MAX_ORDER_UPDATE_LAG_SECONDS)
        order_id = self.order_id(index)
        return Order(
            id=order_id,
            number=1000 + index + 1,
            customer_id=customer_id,
            email=email,
            phone=phone,
            first_name=first,
            last_name=last,
            created_at=created_at,
            updated_at=updated_at,
            currency=self.currency,
            financial_status=draw.pick(FINANCIAL_STATUSES),
            lines=self._order_lines(order_id, draw),
        )

    def _order_lines(self, order_id: int, draw: Draw) -> tuple[LineItem, ...]:
        bucket = draw.below(100)
        if bucket < 80:
            count = 1 + draw.below(5)
        elif bucket < 95:
            count = 6 + draw.below(15)
        else:
            count = 21 + draw.below(40)  # up to 60: beyond BigCommerce's 50 embedded lines
        return tuple(make_line_item(order_id, number, draw) for number in range(count))


def product_title(product_id: int) -> str:
    first = PRODUCT_WORDS[product_id % 9]
    second = PRODUCT_WORDS[9 + (product_id // 9) % (len(PRODUCT_WORDS) - 9)]
    return f"{first} {second} #{product_id}"


def product_price_cents(product_id: int, variant_number: int) -> int:
    return 500 + (product_id * 737) % 15_000 + variant_number * 250


def make_line_item(order_id: int, number: int, draw: Draw) -> LineItem:
    product_id = 1 + draw.below(PRODUCT_COUNT)
    variant_number = draw.below(VARIANTS_PER_PRODUCT)
    return LineItem(
        id=order_id * 100 + number + 1,
        product_id=product_id,
        variant_id=product_id * 10 + variant_number + 1,
        sku=f"SKU-{product_id:04d}-{variant_number + 1}",
        title=product_title(product_id),
        quantity=1 + (draw.below(3) if draw.percent(25) else 0),
        unit_price_cents=product_price_cents(product_id, variant_number),
    )


# --- overlays and ordered views -------------------------------------------------------------

SortKey = tuple[int, int]  # (updated_at, id)


def sort_key(record: HasKey) -> SortKey:
    return (record.updated_at, record.id)


class RecordStore(Generic[R]):
    """Generated records plus an overlay of changes, in two orders: by updated_at and by id.

    ``_changed`` maps an id to its new version, or to ``None`` once deleted. Only changed
    records take memory.
    """

    def __init__(
        self,
        count: int,
        timeline: Timeline,
        make: Callable[[int], R],
        id_of: Callable[[int], int],
        index_of: Callable[[int], int | None],
    ) -> None:
        self._count = count
        self._timeline = timeline
        self._make = make
        self._id_of = id_of
        self._index_of = index_of
        self._changed: dict[int, R | None] = {}
        self._next_new_id = id_of(count - 1) + 1 if count else id_of(0)
        self._tail_cache: list[R] | None = None
        self._changed_indices_cache: list[int] | None = None

    # reads --------------------------------------------------------------------------------
    def get(self, record_id: int) -> R | None:
        if record_id in self._changed:
            return self._changed[record_id]
        index = self._index_of(record_id)
        return None if index is None else self._make(index)

    def count(self, min_updated: int | None = None, max_updated: int | None = None) -> int:
        start = self._first_base_index(min_updated)
        stop = self._base_stop(max_updated)
        base = max(0, stop - start) - self._changed_base_between(start, stop)
        tail = sum(1 for r in self._tail() if _within(r.updated_at, min_updated, max_updated))
        return base + tail

    def iter_by_updated(
        self,
        after: SortKey | None = None,
        min_updated: int | None = None,
        max_updated: int | None = None,
    ) -> Iterator[R]:
        """Visible records in (updated_at, id) order, strictly after ``after``."""
        start = self._first_base_index(min_updated)
        if after is not None:
            start = max(start, self._first_base_index_after(after))
        stop = self._base_stop(max_updated)
        changed = self._changed
        for index in range(start, stop):
            record_id = self._id_of(index)
            if record_id not in changed:
                yield self._make(index)
        for record in self._tail():
            key = sort_key(record)
            if after is not None and key <= after:
                continue
            if _within(record.updated_at, min_updated, max_updated):
                yield record

    def iter_by_id(
        self,
        after_id: int | None = None,
        min_updated: int | None = None,
        max_updated: int | None = None,
    ) -> Iterator[R]:
        """Visible records in id order (Shopify's default sort), strictly after ``after_id``."""
        start = 0
        if after_id is not None and self._count:
            # Ids are consecutive over the indices, so the position is arithmetic.
            start = min(max(after_id - self._id_of(0) + 1, 0), self._count)
        for index in range(start, self._count):
            record_id = self._id_of(index)
            record = self._changed[record_id] if record_id in self._changed else self._make(index)
            if record is not None and _within(record.updated_at, min_updated, max_updated):
                yield record
        created = sorted(
            (r for i, r in self._changed.items() if r is not None and self._index_of(i) is None),
            key=lambda r: r.id,
        )
        for record in created:
            if (after_id is None or record.id > after_id) and _within(
                record.updated_at, min_updated, max_updated
            ):
                yield record

    def page_by_updated(
        self,
        offset: int,
        limit: int,
        min_updated: int | None = None,
        max_updated: int | None = None,
    ) -> list[R]:
        """Records ``offset .. offset+limit`` of the updated_at order (page-number APIs)."""
        start = self._first_base_index(min_updated)
        stop = self._base_stop(max_updated)
        base_visible = max(0, stop - start) - self._changed_base_between(start, stop)
        out: list[R] = []
        if offset < base_visible:
            index = self._nth_visible_base_index(start, offset)
            changed = self._changed
            while index < stop and len(out) < limit:
                if self._id_of(index) not in changed:
                    out.append(self._make(index))
                index += 1
        if len(out) < limit:
            tail = [r for r in self._tail() if _within(r.updated_at, min_updated, max_updated)]
            tail_offset = max(0, offset - base_visible)
            out.extend(tail[tail_offset : tail_offset + limit - len(out)])
        return out

    # writes -------------------------------------------------------------------------------
    def allocate_id(self) -> int:
        record_id = self._next_new_id
        self._next_new_id += 1
        return record_id

    def put(self, record: R) -> None:
        self._changed[record.id] = record
        self._invalidate()

    def delete(self, record_id: int) -> bool:
        if self.get(record_id) is None:
            return False
        self._changed[record_id] = None
        self._invalidate()
        return True

    def snapshot(self) -> RecordStore[R]:
        """A frozen copy for long reads (bulk exports): shares the pure parts, copies overlays."""
        copy: RecordStore[R] = RecordStore(
            self._count, self._timeline, self._make, self._id_of, self._index_of
        )
        copy._changed = dict(self._changed)
        copy._next_new_id = self._next_new_id
        return copy

    # internals ----------------------------------------------------------------------------
    def _invalidate(self) -> None:
        self._tail_cache = None
        self._changed_indices_cache = None

    def _tail(self) -> list[R]:
        if self._tail_cache is None:
            self._tail_cache = sorted(
                (r for r in self._changed.values() if r is not None), key=sort_key
            )
        return self._tail_cache

    def _changed_base_indices(self) -> list[int]:
        if self._changed_indices_cache is None:
            indices = (self._index_of(record_id) for record_id in self._changed)
            self._changed_indices_cache = sorted(i for i in indices if i is not None)
        return self._changed_indices_cache

    def _changed_base_between(self, start: int, stop: int) -> int:
        indices = self._changed_base_indices()
        return max(0, bisect_left(indices, stop) - bisect_left(indices, start))

    def _first_base_index(self, min_updated: int | None) -> int:
        if min_updated is None:
            return 0
        return self._timeline.first_index_at_or_after(min_updated)

    def _base_stop(self, max_updated: int | None) -> int:
        if max_updated is None:
            return self._count
        return self._timeline.first_index_at_or_after(max_updated + 1)

    def _first_base_index_after(self, after: SortKey) -> int:
        """First index whose (updated_at, id) > after: binary search on a monotone key."""
        low, high = self._timeline.first_index_at_or_after(after[0]), self._count
        while low < high:
            middle = (low + high) // 2
            if (self._timeline.at(middle), self._id_of(middle)) > after:
                high = middle
            else:
                low = middle + 1
        return low

    def _nth_visible_base_index(self, start: int, n: int) -> int:
        """Index of the n-th (0-based) unchanged base record at or after ``start``."""
        candidate = start + n
        while True:
            skipped = self._changed_base_between(start, candidate + 1)
            next_candidate = start + n + skipped
            if next_candidate == candidate:
                if self._changed_base_between(candidate, candidate + 1) == 0:
                    return candidate
                next_candidate += 1
            candidate = next_candidate


def _within(value: int, low: int | None, high: int | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


class StoreData:
    """A store's customers and orders: the generator plus overlays."""

    def __init__(self, spec: GeneratorSpec) -> None:
        self.spec = spec
        self.generator = Generator(spec)
        g = self.generator
        self.customers: RecordStore[Customer] = RecordStore(
            spec.customers, g.customer_timeline, g.customer, g.customer_id, g.customer_index
        )
        self.orders: RecordStore[Order] = RecordStore(
            spec.orders, g.order_timeline, g.order, g.order_id, g.order_index
        )

    @property
    def country(self) -> str:
        return self.spec.country

    @property
    def currency(self) -> str:
        return self.generator.currency

    # admin-side changes (each returns the new version so callers can fire webhooks) -------
    def create_customer(self, now: int, **fields: object) -> Customer:
        customer = Customer(
            id=self.customers.allocate_id(),
            first_name=str(fields.get("first_name") or ""),
            last_name=str(fields.get("last_name") or ""),
            email=_optional_str(fields.get("email")),
            phone=_optional_str(fields.get("phone")),
            address_phone=_optional_str(fields.get("address_phone")),
            created_at=now,
            updated_at=now,
            accepts_marketing=bool(fields.get("accepts_marketing", False)),
        )
        self.customers.put(customer)
        return customer

    def update_customer(self, customer_id: int, now: int, **fields: object) -> Customer | None:
        current = self.customers.get(customer_id)
        if current is None:
            return None
        allowed = {k: v for k, v in fields.items() if k in _CUSTOMER_EDITABLE}
        updated = replace(current, updated_at=max(now, current.updated_at), **allowed)  # type: ignore[arg-type]
        self.customers.put(updated)
        return updated

    def create_order(self, now: int, **fields: object) -> Order:
        order_id = self.orders.allocate_id()
        lines_spec = fields.get("lines")
        line_count = int(fields.get("line_count") or 1)  # type: ignore[call-overload]
        draw = Draw(self.spec.key, b"new-order", order_id)
        lines = tuple(
            _line_from_fields(order_id, number, item, draw)
            for number, item in enumerate(
                lines_spec if isinstance(lines_spec, list) else [{}] * line_count
            )
        )
        customer_id = fields.get("customer_id")
        order = Order(
            id=order_id,
            number=1000 + order_id,
            customer_id=int(customer_id) if customer_id else None,  # type: ignore[call-overload]
            email=_optional_str(fields.get("email")),
            phone=_optional_str(fields.get("phone")),
            first_name=str(fields.get("first_name") or ""),
            last_name=str(fields.get("last_name") or ""),
            created_at=now,
            updated_at=now,
            currency=str(fields.get("currency") or self.currency),
            financial_status=str(fields.get("financial_status") or "PAID"),
            lines=lines,
        )
        self.orders.put(order)
        return order

    def update_order(self, order_id: int, now: int, **fields: object) -> Order | None:
        current = self.orders.get(order_id)
        if current is None:
            return None
        allowed = {k: v for k, v in fields.items() if k in _ORDER_EDITABLE}
        updated = replace(current, updated_at=max(now, current.updated_at), **allowed)  # type: ignore[arg-type]
        self.orders.put(updated)
        return updated


_CUSTOMER_EDITABLE = frozenset(
    {"first_name", "last_name", "email", "phone", "address_phone", "accepts_marketing"}
)
_ORDER_EDITABLE = frozenset(
    {"email", "phone", "first_name", "last_name", "financial_status", "customer_id"}
)


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


def _line_from_fields(order_id: int, number: int, item: object, draw: Draw) -> LineItem:
    generated = make_line_item(order_id, number, draw)
    if not isinstance(item, dict) or not item:
        return generated
    return replace(
        generated,
        **{
            k: item[k]
            for k in ("product_id", "variant_id", "sku", "title", "quantity", "unit_price_cents")
            if k in item
        },
    )
