"""Normalization of e-mails and phones (DESIGN.md §6). Pure: no database, no network."""

import string
import unicodedata

import phonenumbers
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from athos_identity.identity import normalize as norm
from athos_identity.identity.normalize import InvalidIdentifier, normalize_email, normalize_phone

ALL_REASONS = frozenset(value for name, value in vars(norm).items() if name.startswith("REASON_"))

# --------------------------------------------------------------------------------------------
# E-mail: table of messy real-world inputs
# --------------------------------------------------------------------------------------------

VALID_EMAILS = [
    # whitespace and case
    ("jane@example.com", "jane@example.com"),
    ("  Jane@Example.COM  ", "jane@example.com"),
    ("\tJANE@EXAMPLE.COM\r\n", "jane@example.com"),
    ("\u00a0jane@example.com\u3000", "jane@example.com"),  # NBSP, ideographic space
    ("\ufeffjane@example.com\u200b", "jane@example.com"),  # BOM and zero-width space (CSV)
    # Gmail: dots and +tags removed, only for gmail.com
    ("Jane.Doe@gmail.com", "janedoe@gmail.com"),
    ("j.a.n.e.d.o.e@GMAIL.COM", "janedoe@gmail.com"),
    ("Jane.Doe+Newsletter@gmail.com", "janedoe@gmail.com"),
    ("jane.doe+a+b.c@gmail.com", "janedoe@gmail.com"),
    ("janedoe+@gmail.com", "janedoe@gmail.com"),
    ("..jane..@gmail.com", "jane@gmail.com"),
    # googlemail.com is NOT treated as gmail.com (UID2 only special-cases gmail.com)
    ("Jane.Doe+x@googlemail.com", "jane.doe+x@googlemail.com"),
    # sub-domains and look-alikes of gmail are ordinary domains
    ("jane.doe+x@mail.gmail.com", "jane.doe+x@mail.gmail.com"),
    ("jane.doe+x@gmail.co.uk", "jane.doe+x@gmail.co.uk"),
    # non-Gmail +tags and dots kept
    ("Jane.Doe+Work@Example.com", "jane.doe+work@example.com"),
    ("+jane@example.com", "+jane@example.com"),
    ("jane..doe.@example.com", "jane..doe.@example.com"),  # odd but harmless, UID2 keeps it
    # RFC 5322 atext specials
    ("o'brien@example.ie", "o'brien@example.ie"),
    ("a!#$%&'*+-/=?^_`{|}~b@example.com", "a!#$%&'*+-/=?^_`{|}~b@example.com"),
    ("user@sub-domain.example-host.co.uk", "user@sub-domain.example-host.co.uk"),
    ("user@xn--mnchen-3ya.de", "user@xn--mnchen-3ya.de"),  # punycode kept as is
    ("user@123.example", "user@123.example"),
    # unicode (SMTPUTF8 / IDN): lowercased, NFC, kept
    ("JÖRG@Müller.DE", "jörg@müller.de"),
    ("user@MÜNCHEN.de", "user@münchen.de"),  # U-label not converted to punycode
    ("ÉLODIE@exemple.fr", "élodie@exemple.fr"),
    ("e\u0301lodie@exemple.fr", "\u00e9lodie@exemple.fr"),  # NFD -> NFC
    ("用户@例子.广告", "用户@例子.广告"),
    ("ΣΟΦΙΑ@example.gr", "σοφια@example.gr"),  # Python applies the final-sigma rule
    ("δοκιμή@παράδειγμα.δοκιμή", "δοκιμή@παράδειγμα.δοκιμή"),
    ("😊testtest@test.com", "😊testtest@test.com"),
    ("testtest@😊test.com", "testtest@😊test.com"),
    ("می\u200cخواهم@example.ir", "می\u200cخواهم@example.ir"),  # ZWNJ is legitimate in Persian
    # UID2 client test vectors (see test_hashing for their hashes)
    ("TEst.TEst+123@GMail.Com", "testtest@gmail.com"),
    ("  test.test@gmail.com  ", "testtest@gmail.com"),
]


@pytest.mark.parametrize(("raw", "expected"), VALID_EMAILS)
def test_normalize_email_valid(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


INVALID_EMAILS = [
    ("", norm.REASON_EMPTY),
    ("   ", norm.REASON_EMPTY),
    ("\u200b\ufeff", norm.REASON_EMPTY),
    ("jane.example.com", norm.REASON_EMAIL_NO_AT),
    ("jane(at)example.com", norm.REASON_EMAIL_NO_AT),
    ("jane@doe@example.com", norm.REASON_EMAIL_MANY_AT),
    ("a@ba@z.com", norm.REASON_EMAIL_MANY_AT),
    ("jane@example.com, john@example.com", norm.REASON_EMAIL_WHITESPACE),
    ("jane@example.com,john@example.com", norm.REASON_EMAIL_MANY_AT),
    ("@", norm.REASON_EMAIL_EMPTY_LOCAL),
    (" @", norm.REASON_EMAIL_EMPTY_LOCAL),
    ("@example.com", norm.REASON_EMAIL_EMPTY_LOCAL),
    ("jane@", norm.REASON_EMAIL_EMPTY_DOMAIN),
    ("+@gmail.com", norm.REASON_EMAIL_EMPTY_LOCAL_GMAIL),
    (".+@gmail.com", norm.REASON_EMAIL_EMPTY_LOCAL_GMAIL),
    ("...@gmail.com", norm.REASON_EMAIL_EMPTY_LOCAL_GMAIL),
    ("+tag@gmail.com", norm.REASON_EMAIL_EMPTY_LOCAL_GMAIL),
    ("jane doe@example.com", norm.REASON_EMAIL_WHITESPACE),
    ("jane@exam ple.com", norm.REASON_EMAIL_WHITESPACE),
    ("jane\t@example.com", norm.REASON_EMAIL_WHITESPACE),
    ("jane\n@example.com", norm.REASON_EMAIL_WHITESPACE),
    ("jane\x00@example.com", norm.REASON_EMAIL_WHITESPACE),
    ("jörg\u00a0x@example.de", norm.REASON_EMAIL_WHITESPACE),  # NBSP inside
    ("jane\u200b@example.com", norm.REASON_EMAIL_WHITESPACE),  # zero-width space inside
    ("jane\u202e@example.com", norm.REASON_EMAIL_WHITESPACE),  # bidi override (spoofing)
    ("jané\ud800@example.com", norm.REASON_EMAIL_WHITESPACE),  # lone surrogate
    ("Jane Doe <jane@example.com>", norm.REASON_EMAIL_WHITESPACE),
    ("<jane@example.com>", norm.REASON_EMAIL_LOCAL_CHARS),
    ('"jane doe"@example.com', norm.REASON_EMAIL_WHITESPACE),
    ('"jane"@example.com', norm.REASON_EMAIL_LOCAL_CHARS),
    ("jane;@example.com", norm.REASON_EMAIL_LOCAL_CHARS),
    ("jane@localhost", norm.REASON_EMAIL_DOMAIN_NO_DOT),
    ("jane@example", norm.REASON_EMAIL_DOMAIN_NO_DOT),
    ("jane@gmail,com", norm.REASON_EMAIL_DOMAIN_NO_DOT),
    ("jane@example.com.", norm.REASON_EMAIL_DOMAIN_INVALID),
    ("jane@.example.com", norm.REASON_EMAIL_DOMAIN_INVALID),
    ("jane@example..com", norm.REASON_EMAIL_DOMAIN_INVALID),
    ("jane@exa_mple.com", norm.REASON_EMAIL_DOMAIN_INVALID),
    ("jane@example.com;", norm.REASON_EMAIL_DOMAIN_INVALID),
    ("jane@example.com>", norm.REASON_EMAIL_DOMAIN_INVALID),
    ("jane@[192.168.0.1]", norm.REASON_EMAIL_DOMAIN_INVALID),
    ("jane@192.168.0.1", norm.REASON_EMAIL_DOMAIN_INVALID),
    ("x" * 250 + "@example.com", norm.REASON_TOO_LONG),
    ("x" * 2000 + "@example.com", norm.REASON_TOO_LONG),
]


@pytest.mark.parametrize(("raw", "reason"), INVALID_EMAILS)
def test_normalize_email_invalid(raw: str, reason: str) -> None:
    with pytest.raises(InvalidIdentifier) as info:
        normalize_email(raw)
    assert info.value.reason == reason
    assert str(info.value) == reason
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("raw", [None, b"jane@example.com", 42])
def test_normalize_email_rejects_non_strings(raw: object) -> None:
    with pytest.raises(InvalidIdentifier) as info:
        normalize_email(raw)  # type: ignore[arg-type]
    assert info.value.reason == norm.REASON_NOT_A_STRING


def test_edge_characters_cover_every_unicode_whitespace() -> None:
    whitespace = {chr(cp) for cp in range(0x110000) if chr(cp).isspace()}
    assert whitespace <= set(norm._EDGE_CHARS)


# UID2 published examples, "Normalization Examples for Email" of
# https://unifiedid.com/docs/getting-started/gs-normalization-encoding
# (IABTechLab/uid2docs, docs/getting-started/gs-normalization-encoding.md); their hashes are
# checked in test_hashing.py.
UID2_DOC_EMAILS = [
    ("MyEmail@example.com", "myemail@example.com"),
    ("MYEMAIL@example.com", "myemail@example.com"),
    ("My.Email@example.com", "my.email@example.com"),
    ("JANESAOIRSE@example.com", "janesaoirse@example.com"),
    ("JaneSaoirse@example.com", "janesaoirse@example.com"),
    ("jane.saoirse@example.com", "jane.saoirse@example.com"),
    ("Jane.Saoirse@example.com", "jane.saoirse@example.com"),
    ("JaneSaoirse+Work@example.com", "janesaoirse+work@example.com"),
    ("JANE.SAOIRSE@gmail.com", "janesaoirse@gmail.com"),
    ("Jane.Saoirse@gmail.com", "janesaoirse@gmail.com"),
    ("JaneSaoirse+Work@gmail.com", "janesaoirse@gmail.com"),
    ("JANESaoirse@gmail.com", "janesaoirse@gmail.com"),
    ("jane.doe@gmail.com", "janedoe@gmail.com"),
    ("janedoe+home@gmail.com", "janedoe@gmail.com"),
    ("USER@example.com", "user@example.com"),
]


@pytest.mark.parametrize(("raw", "expected"), UID2_DOC_EMAILS)
def test_uid2_documented_email_normalization(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


# --------------------------------------------------------------------------------------------
# Phone: table of messy real-world inputs
# --------------------------------------------------------------------------------------------

VALID_PHONES = [
    # US
    ("(650) 253-0000", "US", "+16502530000"),
    ("650.253.0000", "US", "+16502530000"),
    ("650 253 0000", "us", "+16502530000"),  # region is case-insensitive
    ("1 (650) 253-0000", "US", "+16502530000"),
    ("+1 650-253-0000", None, "+16502530000"),
    ("+1 (650) 253-0000", "FR", "+16502530000"),  # '+' wins over the region
    ("011 44 20 7946 0018", "US", "+442079460018"),  # the region's own IDD prefix
    ("1 (234) 567-8901", "US", "+12345678901"),  # UID2 docs example
    # UK
    ("020 7946 0018", "GB", "+442079460018"),
    ("07700 900123", "GB", "+447700900123"),
    ("+44 (0)20 7946 0018", None, "+442079460018"),
    ("+44 7700 900123", None, "+447700900123"),
    ("0044 20 7946 0018", None, "+442079460018"),
    ("0044 20 7946 0018", "US", "+442079460018"),  # '00' parses without the region
    # France
    ("06 12 34 56 78", "FR", "+33612345678"),
    ("06.12.34.56.78", "FR", "+33612345678"),
    ("01-23-45-67-89", "FR", "+33123456789"),
    ("+33 (0)6 12 34 56 78", None, "+33612345678"),
    ("0033 6 12 34 56 78", None, "+33612345678"),
    ("+33612345678", None, "+33612345678"),
    # Germany
    ("030 1234567", "DE", "+49301234567"),
    ("030/1234567", "DE", "+49301234567"),
    ("0151 23456789", "DE", "+4915123456789"),
    ("+49 (0)151 2345 6789", None, "+4915123456789"),
    ("0049 30 1234567", None, "+49301234567"),
    # extensions dropped
    ("(650) 253-0000 ext. 123", "US", "+16502530000"),
    ("650-253-0000 x123", "US", "+16502530000"),
    ("650-253-0000#123", "US", "+16502530000"),
    ("+1 650 253 0000 extension 4", None, "+16502530000"),
    ("+1 650 253 0000;ext=12", None, "+16502530000"),
    ("+44 20 7946 0018 Ext: 77", None, "+442079460018"),
    # other messy forms
    ("  +1 650 253 0000\u00a0", None, "+16502530000"),
    ("tel:+1-650-253-0000", None, "+16502530000"),
    (
        "\uff0b\uff14\uff14 \uff12\uff10 \uff17\uff19\uff14\uff16 \uff10\uff10\uff11\uff18",
        None,
        "+442079460018",
    ),  # full-width digits and plus
    ("+290 12345", None, "+29012345"),  # 8 digits: the E.164 minimum we accept
    ("+800 1234 5678", None, "+80012345678"),  # international freephone
    ("011 15 2345-6789", "AR", "+5491123456789"),  # Argentine mobile, '15' -> '9'
    ("+12345678901", None, "+12345678901"),  # UID2 docs example (already normalized)
]


@pytest.mark.parametrize(("raw", "region", "expected"), VALID_PHONES)
def test_normalize_phone_valid(raw: str, region: str | None, expected: str) -> None:
    assert normalize_phone(raw, region) == expected


INVALID_PHONES = [
    ("", "US", norm.REASON_EMPTY),
    ("   ", "US", norm.REASON_EMPTY),
    ("06 12 34 56 78", None, norm.REASON_PHONE_NO_REGION),
    ("(650) 253-0000", None, norm.REASON_PHONE_NO_REGION),
    ("07700 900123", "", norm.REASON_PHONE_NO_REGION),  # empty region means unknown
    ("1-800-FLOWERS", "US", norm.REASON_PHONE_LETTERS),
    ("+1 650 CALL NOW", None, norm.REASON_PHONE_LETTERS),
    ("0800 ABC DEF", "GB", norm.REASON_PHONE_LETTERS),
    ("n/a", "US", norm.REASON_PHONE_LETTERS),
    ("none", "US", norm.REASON_PHONE_LETTERS),
    ("+49 30 1234567 Durchwahl 12", None, norm.REASON_PHONE_LETTERS),
    ("mobile: +33 6 12 34 56 78", None, norm.REASON_PHONE_LETTERS),
    ("123", "US", norm.REASON_PHONE_TOO_SHORT),
    ("12", "FR", norm.REASON_PHONE_TOO_SHORT),
    ("+1 650", None, norm.REASON_PHONE_TOO_SHORT),
    ("+1 650 253 0000 0000 0000", None, norm.REASON_PHONE_TOO_LONG),
    ("+1234567890123456789", None, norm.REASON_PHONE_TOO_LONG),
    ("06 12 34 56 78 / 06 98 76 54 32", "FR", norm.REASON_PHONE_TOO_LONG),
    ("253-0000", "US", norm.REASON_PHONE_LOCAL_ONLY),
    ("+999 1234567", None, norm.REASON_PHONE_COUNTRY_CODE),
    ("+", None, norm.REASON_PHONE_NOT_A_NUMBER),
    ("---", "US", norm.REASON_PHONE_NOT_A_NUMBER),
    ("x0", "US", norm.REASON_PHONE_NOT_A_NUMBER),  # an extension alone; found by hypothesis
    ("ext. 12", "US", norm.REASON_PHONE_NOT_A_NUMBER),
    ("1" * 101, "US", norm.REASON_TOO_LONG),
]


@pytest.mark.parametrize(("raw", "region", "reason"), INVALID_PHONES)
def test_normalize_phone_invalid(raw: str, region: str | None, reason: str) -> None:
    with pytest.raises(InvalidIdentifier) as info:
        normalize_phone(raw, region)
    assert info.value.reason == reason


def test_parse_errors_do_not_chain_the_library_exception() -> None:
    with pytest.raises(InvalidIdentifier) as info:
        normalize_phone("+999 1234567", None)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


@pytest.mark.parametrize("region", ["XX", "USA", "fr-FR", "ZZ"])
def test_unknown_region_is_a_configuration_error(region: str) -> None:
    with pytest.raises(ValueError, match="default_region") as info:
        normalize_phone("06 12 34 56 78", region)
    assert not isinstance(info.value, InvalidIdentifier)


# --------------------------------------------------------------------------------------------
# Invalid-identifier messages never carry the input (DESIGN.md §2.1)
# --------------------------------------------------------------------------------------------

SECRETISH_EMAILS = [raw for raw, _ in INVALID_EMAILS if len(raw.strip()) >= 3]
SECRETISH_PHONES = [(raw, region) for raw, region, _ in INVALID_PHONES if len(raw.strip()) >= 3]


def _assert_no_leak(exc: InvalidIdentifier, raw: str) -> None:
    rendered = [str(exc), repr(exc), exc.reason, *map(str, exc.args)]
    needles = {raw, raw.strip()} | {part for part in raw.split() if len(part) >= 3}
    for text in rendered:
        for needle in needles:
            assert needle not in text
    assert exc.reason in ALL_REASONS


@pytest.mark.parametrize("raw", SECRETISH_EMAILS)
def test_invalid_email_message_never_contains_input(raw: str) -> None:
    with pytest.raises(InvalidIdentifier) as info:
        normalize_email(raw)
    _assert_no_leak(info.value, raw)


@pytest.mark.parametrize(("raw", "region"), SECRETISH_PHONES)
def test_invalid_phone_message_never_contains_input(raw: str, region: str | None) -> None:
    with pytest.raises(InvalidIdentifier) as info:
        normalize_phone(raw, region)
    _assert_no_leak(info.value, raw)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_rejection_uses_a_fixed_reason(raw: str) -> None:
    for call in (lambda: normalize_email(raw), lambda: normalize_phone(raw, "US")):
        try:
            call()
        except InvalidIdentifier as exc:
            # A fixed phrase from the module: by construction it cannot echo the input.
            assert exc.reason in ALL_REASONS
            assert exc.args == (exc.reason,)


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

ATEXT = string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~."
LOCAL_ALPHABET = st.one_of(
    st.sampled_from(ATEXT),
    st.characters(min_codepoint=0x80, categories=("Lu", "Ll", "Lo", "Nd", "Mn", "So")),
)
LABEL_ALPHABET = st.one_of(
    st.sampled_from(string.ascii_letters + string.digits + "-"),
    st.characters(min_codepoint=0x80, categories=("Lu", "Ll", "Lo", "So")),
)
labels = st.text(LABEL_ALPHABET, min_size=1, max_size=12)
domains = st.one_of(
    st.just("gmail.com"),
    st.just("GMail.Com"),
    st.just("googlemail.com"),
    st.builds(
        lambda parts, tld: ".".join([*parts, tld]),
        st.lists(labels, min_size=1, max_size=3),
        st.text(st.sampled_from(string.ascii_letters), min_size=2, max_size=6),
    ),
)
emails = st.builds(
    lambda pad1, local, domain, pad2: f"{pad1}{local}@{domain}{pad2}",
    st.sampled_from(["", " ", "\t", "\u00a0", "\ufeff"]),
    st.text(LOCAL_ALPHABET, min_size=1, max_size=20),
    domains,
    st.sampled_from(["", " ", "\r\n", "\u3000", "\u200b"]),
)


@settings(max_examples=500, deadline=None)
@given(emails)
@example("JANE.DOE+x@GMAIL.com")
@example("ΣΑΣ@example.com")
@example("İstanbul@example.com")
@example("e\u0301@example.com")
def test_normalize_email_is_idempotent(raw: str) -> None:
    try:
        once = normalize_email(raw)
    except InvalidIdentifier:
        assume(False)
        return
    assert normalize_email(once) == once
    assert once == once.strip()
    assert unicodedata.is_normalized("NFC", once)
    assert once.count("@") == 1


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_normalize_email_is_idempotent_on_arbitrary_text(raw: str) -> None:
    try:
        once = normalize_email(raw)
    except InvalidIdentifier:
        return
    assert normalize_email(once) == once


REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
FORMATS = [
    phonenumbers.PhoneNumberFormat.E164,
    phonenumbers.PhoneNumberFormat.INTERNATIONAL,
    phonenumbers.PhoneNumberFormat.NATIONAL,
    phonenumbers.PhoneNumberFormat.RFC3966,
]


@st.composite
def example_phones(draw: st.DrawFn) -> tuple[str, str, str]:
    """(formatted number, its region, its E.164) from libphonenumber's example numbers."""
    region = draw(st.sampled_from(REGIONS))
    number_type = draw(
        st.sampled_from(
            [
                phonenumbers.PhoneNumberType.MOBILE,
                phonenumbers.PhoneNumberType.FIXED_LINE,
            ]
        )
    )
    number = phonenumbers.example_number_for_type(region, number_type)
    assume(number is not None)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    formatted = phonenumbers.format_number(number, draw(st.sampled_from(FORMATS)))
    return formatted, region, e164


@settings(max_examples=400, deadline=None)
@given(example_phones())
def test_normalize_phone_matches_libphonenumber_examples_and_is_idempotent(
    sample: tuple[str, str, str],
) -> None:
    formatted, region, e164 = sample
    try:
        once = normalize_phone(formatted, region)
    except InvalidIdentifier as exc:
        # Only numbers shorter than E.164's 8-digit floor, or only locally diallable.
        assert exc.reason in (norm.REASON_PHONE_TOO_SHORT, norm.REASON_PHONE_LOCAL_ONLY)
        assert len(e164) < 9 or exc.reason == norm.REASON_PHONE_LOCAL_ONLY
        return
    assert once == e164
    assert normalize_phone(once, None) == once
    assert normalize_phone(once, region) == once


@pytest.mark.parametrize("raw", ["+49 0000000", "+490000000", "+490000001", "+4900000000"])
def test_numbers_that_do_not_round_trip_are_rejected(raw: str) -> None:
    """Hypothesis found '+490000001' normalizing to a different '+49000001' the second time."""
    with pytest.raises(InvalidIdentifier) as rejected:
        normalize_phone(raw, None)
    assert rejected.value.reason in ALL_REASONS


@settings(max_examples=400, deadline=None)
@given(
    st.text(st.sampled_from(string.digits + " -().+"), min_size=1, max_size=22),
    st.sampled_from(["US", "GB", "FR", "DE", "IN", "BR", None]),
)
def test_normalize_phone_output_is_e164_and_stable(raw: str, region: str | None) -> None:
    try:
        once = normalize_phone(raw, region)
    except InvalidIdentifier as exc:
        assert exc.reason in ALL_REASONS
        return
    assert once[0] == "+" and once[1:].isdigit() and once[1] != "0"
    assert 8 <= len(once) - 1 <= 15
    assert normalize_phone(once, None) == once
