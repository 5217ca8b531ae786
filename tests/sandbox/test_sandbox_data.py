"""The generator: deterministic, lazy, messy, and ordered by updated_at."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from athos_identity.sandbox.data import GeneratorSpec, StoreData, Timeline
from athos_identity.sandbox.expected import expected_answers, normalize_email, normalize_phone

SRC = Path(__file__).resolve().parents[2] / "src"

ANCHOR = 1_780_000_000


def make_store(customers: int = 2000, orders: int = 1000, country: str = "US",
               seed: int = 7) -> StoreData:
    return StoreData(GeneratorSpec(seed=seed, name="test.myshopify.com", country=country,
                                   customers=customers, orders=orders, anchor=ANCHOR))


def test_same_seed_same_records_other_seed_other_records() -> None:
    a, b, c = make_store(), make_store(), make_store(seed=8)
    first_fifty = range(50)
    assert [a.generator.customer(i) for i in first_fifty] == [
        b.generator.customer(i) for i in first_fifty
    ]
    assert [a.generator.order(i) for i in range(50)] == [b.generator.order(i) for i in range(50)]
    assert [a.generator.customer(i).email for i in range(50)] != [
        c.generator.customer(i).email for i in range(50)
    ]


def test_updated_at_never_decreases_with_index() -> None:
    store = make_store()
    stamps = [store.generator.customer(i).updated_at for i in range(2000)]
    assert stamps == sorted(stamps)
    assert all(c.created_at <= c.updated_at for c in store.customers.iter_by_updated())
    assert all(o.created_at <= o.updated_at for o in store.orders.iter_by_updated())


@pytest.mark.parametrize("count,span", [(10, 1000), (1000, 10), (7, 7), (1_000_000, 94_608_000)])
def test_timeline_first_index_is_exact(count: int, span: int) -> None:
    timeline = Timeline(start=100, span=span, count=count)
    for moment in (50, 100, 101, 100 + span // 3, 100 + span - 1, 100 + span, 10**12):
        index = timeline.first_index_at_or_after(moment)
        assert index == count or timeline.at(index) >= moment
        assert index == 0 or timeline.at(index - 1) < moment


def test_real_world_mess_is_present() -> None:
    store = make_store(customers=3000, orders=1500)
    customers = list(store.customers.iter_by_updated())
    emails = [c.email for c in customers if c.email]
    assert any(e != e.strip() for e in emails), "surrounding whitespace"
    assert any(e != e.lower() for e in emails), "mixed case"
    assert any("+" in e.split("@")[0] and "gmail.com" in e.lower() for e in emails)
    assert any("+" in e.split("@")[0] and "gmail.com" not in e.lower() for e in emails)
    assert any(normalize_email(e) is None for e in emails), "some invalid e-mails"
    assert any(not e.isascii() for e in emails), "unicode mailboxes"
    assert any(not (c.first_name + c.last_name).isascii() for c in customers)
    phones = [c.phone for c in customers if c.phone]
    assert any(p.strip().startswith("(") for p in phones)
    assert any(p.strip().startswith("+") for p in phones)
    assert any(p.strip().startswith("00") for p in phones)
    assert any("x" in p or "ext" in p for p in phones), "extensions"
    assert any(normalize_phone(p, "US") is None for p in phones), "some invalid phones"
    orders = list(store.orders.iter_by_updated())
    assert any(o.customer_id is None for o in orders), "guest orders"
    line_counts = [len(o.lines) for o in orders]
    assert min(line_counts) >= 1 and max(line_counts) <= 60 and max(line_counts) > 50


def test_national_formats_per_country() -> None:
    def phones(country: str) -> list[str]:
        store = make_store(customers=400, orders=0, country=country)
        return [c.phone.strip() for c in store.customers.iter_by_updated() if c.phone]

    assert any(p.startswith("020 7946 ") for p in phones("GB"))
    assert any(p[:2] in ("06", "07") and p[2] == " " for p in phones("FR"))
    assert any(p.startswith("(") and ") " in p for p in phones("US"))


def test_expected_answers_find_duplicates_and_shared_phones() -> None:
    store = make_store(customers=3000, orders=500)
    answers = expected_answers(store)
    assert answers.customer_count == 3000 and answers.order_count == 500
    assert any(len(ids) > 1 for ids in answers.customers_by_email.values()), "duplicate people"
    assert answers.shared_phones(), "shared phones"
    assert answers.invalid_emails > 0 and answers.invalid_phones > 0
    assert answers.guest_order_count > 0
    customer = next(c for c in store.customers.iter_by_updated()
                    if c.email and normalize_email(c.email))
    assert customer.id in answers.customers_for_email(customer.email.upper())


def test_gmail_rule_and_invalids() -> None:
    assert normalize_email("  J.O.Hn+News@GMail.com ") == "john@gmail.com"
    assert normalize_email("John+News@Yahoo.com") == "john+news@yahoo.com"
    assert normalize_email("+promo@gmail.com") is None
    assert normalize_email("a@b@c.com") is None and normalize_email("nope") is None
    assert normalize_phone("(415) 555-0134 ext. 12", "US") == "+14155550134"
    assert normalize_phone("020 7946 0018", "GB") == "+442079460018"
    assert normalize_phone("06 12 34 56 78", "FR") == "+33612345678"
    assert normalize_phone("call me", "US") is None


def test_overlays_move_changed_records_to_the_tail() -> None:
    store = make_store(customers=100, orders=0)
    now = ANCHOR + 10
    before = [c.id for c in store.customers.iter_by_updated()]
    store.update_customer(5, now, email="new@example.com")
    assert store.customers.delete(7)
    created = store.create_customer(now, email="fresh@example.com")
    order = [c.id for c in store.customers.iter_by_updated()]
    assert order == [i for i in before if i not in (5, 7)] + [5, created.id]
    assert store.customers.count() == 100
    assert store.customers.get(7) is None and store.customers.get(5).email == "new@example.com"
    by_id = [c.id for c in store.customers.iter_by_id()]
    assert by_id == [i for i in before if i != 7] + [created.id]


def test_page_by_updated_matches_full_iteration_with_overlays() -> None:
    store = make_store(customers=300, orders=0)
    now = ANCHOR + 10
    for customer_id in (3, 4, 150, 299):
        store.update_customer(customer_id, now, first_name="X")
    store.customers.delete(10)
    store.create_customer(now, email="n@example.com")
    everything = [c.id for c in store.customers.iter_by_updated()]
    for limit in (1, 7, 50, 250):
        paged = []
        for offset in range(0, len(everything) + limit, limit):
            paged += [c.id for c in store.customers.page_by_updated(offset, limit)]
        assert paged == everything
    since = store.generator.customer_timeline.at(200)
    assert [c.id for c in store.customers.iter_by_updated(min_updated=since)] == [
        c.id for c in store.customers.page_by_updated(0, 1000, min_updated=since)
    ]
    assert store.customers.count(min_updated=since) == len(
        list(store.customers.iter_by_updated(min_updated=since))
    )


def test_cursor_iteration_resumes_exactly_after_the_key() -> None:
    store = make_store(customers=500, orders=0)
    everything = list(store.customers.iter_by_updated())
    middle = everything[123]
    resumed = list(store.customers.iter_by_updated(after=(middle.updated_at, middle.id)))
    assert [c.id for c in resumed] == [c.id for c in everything[124:]]


MEMORY_PROBE = textwrap.dedent(
    """
    import sys, time
    from athos_identity.sandbox.data import GeneratorSpec, StoreData
    store = StoreData(GeneratorSpec(seed=1, name="big", country="US", customers=1_000_000,
                                    orders=1_000_000, anchor=int(time.time())))
    assert store.customers.count() == 1_000_000
    # Serve pages across the whole range, as a client paging to the end would.
    for offset in range(0, 1_000_000, 25_000):
        page = store.customers.page_by_updated(offset, 250)
        assert len(page) == 250
    last = store.customers.page_by_updated(999_900, 250)
    assert len(last) == 100 and last[-1].id == 1_000_000
    # Generate every 25th customer across the range, and whole pages of orders.
    seen = 0
    for index in range(0, 1_000_000, 25):
        seen += store.generator.customer(index).id > 0
    for order in store.orders.page_by_updated(500_000, 2_000):
        seen += len(order.lines) > 0
    # VmHWM, not ru_maxrss: the latter keeps the parent's high-water mark across fork.
    with open("/proc/self/status") as status:
        peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    print(peak_kb // 1024, seen)
    """
)


def test_a_million_customers_fit_in_little_memory() -> None:
    python_path = os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": python_path}
    result = subprocess.run([sys.executable, "-c", MEMORY_PROBE], capture_output=True, text=True,
                            env=env, timeout=120, check=True)
    peak_mb, seen = (int(x) for x in result.stdout.split())
    assert seen == 42_000
    assert peak_mb < 512, f"peak RSS {peak_mb} MB (the bound is about 1 GB)"


def test_phone_formats_do_not_collapse_to_few_numbers() -> None:
    store = make_store(customers=2000, orders=0)
    answers = expected_answers(store, include_orders=False)
    sizes = Counter(len(ids) for ids in answers.customers_by_phone.values())
    assert sizes[1] > 10 * sum(v for k, v in sizes.items() if k > 1)
