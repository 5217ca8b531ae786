"""Normalization of e-mail addresses and phone numbers before hashing (DESIGN.md §6).

Both functions are pure, run on every synced record and every look-up, and never let the raw
value escape: an invalid input raises :class:`InvalidIdentifier`, whose ``reason`` comes from a
small fixed vocabulary (the module-level ``REASON_*`` constants) and never contains the input.
The reasons are safe to log and to use as metric labels.

E-mail (UID2-compatible, https://unifiedid.com/docs/getting-started/gs-normalization-encoding):

1. Strip leading/trailing whitespace (any Unicode whitespace, plus the zero-width characters
   U+200B, U+200C, U+200D, U+2060 and the byte-order mark U+FEFF that copy-paste and CSV
   exports leave at the edges).
2. Lowercase with full Unicode case mapping (``str.lower``, the same mapping as JavaScript's
   ``toLowerCase`` used by the UID2 JS SDK). For ASCII addresses this is exactly UID2.
3. Non-ASCII addresses are put in Unicode NFC (RFC 6532 §3.1). Text typed in browsers and
   stored by Shopify/BigCommerce is already NFC, so this changes nothing in practice, but it
   makes a decomposed "é" (e + U+0301) match a composed one.
4. For the domain ``gmail.com`` only (UID2 does not treat ``googlemail.com`` the same; neither
   do we), remove every ``.`` of the local part and drop ``+`` and everything after it.

Validation is strict where UID2 is lenient, but never changes the normalized form of an
accepted address, so hashes stay compatible: rejected are a missing or repeated ``@``, an empty
local part or domain, an empty local part after the Gmail rule, whitespace or control characters
inside the address (UID2 would silently delete spaces; we refuse to guess), the RFC 5322
specials ``"(),:;<>[\\]`` in the local part (quoted local parts are not supported), a domain
that is not dot-separated labels of ASCII letters, digits, hyphens or non-ASCII characters, a
domain without a dot, an all-digit top-level label (IP literals), and addresses longer than 254
characters. Unicode is accepted in the local part and the domain (SMTPUTF8 / IDN, including
emoji domains); the domain is NOT converted between its Unicode and punycode (``xn--``) forms:
the two spellings hash differently, as they do in UID2.

Differences from the UID2 reference operator, for non-ASCII input only: the Java operator lowers
only A-Z, we lower every cased letter (as the UID2 JS SDK does) and apply NFC.

Phone: E.164 through ``phonenumbers`` (libphonenumber); see :func:`normalize_phone`.
"""

from __future__ import annotations

import re
import unicodedata

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult

__all__ = [
    "InvalidIdentifier",
    "normalize_email",
    "normalize_phone",
]


class InvalidIdentifier(ValueError):
    """An e-mail, phone or pre-hashed value that cannot be normalized.

    ``reason`` is one of the module's ``REASON_*`` constants (or the pre-hashed reason in
    ``hashing``): a fixed, human-readable phrase that never contains the rejected value.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- reasons (fixed vocabulary; never interpolate the input into these) -----------------------

REASON_NOT_A_STRING = "value must be a string"
REASON_EMPTY = "value is empty"
REASON_TOO_LONG = "value is too long"
REASON_EMAIL_NO_AT = "e-mail address has no '@'"
REASON_EMAIL_MANY_AT = "e-mail address has more than one '@'"
REASON_EMAIL_EMPTY_LOCAL = "e-mail address has an empty local part"
REASON_EMAIL_EMPTY_LOCAL_GMAIL = "e-mail address has an empty local part after the Gmail rule"
REASON_EMAIL_EMPTY_DOMAIN = "e-mail address has an empty domain"
REASON_EMAIL_WHITESPACE = "e-mail address contains whitespace or control characters"
REASON_EMAIL_LOCAL_CHARS = "e-mail local part contains characters not allowed unquoted"
REASON_EMAIL_DOMAIN_NO_DOT = "e-mail domain has no dot"
REASON_EMAIL_DOMAIN_INVALID = "e-mail domain is not a valid host name"
REASON_PHONE_NO_REGION = "phone number has no country code and no default region is known"
REASON_PHONE_LETTERS = "phone number contains letters (vanity numbers are not accepted)"
REASON_PHONE_COUNTRY_CODE = "phone number has an invalid country code"
REASON_PHONE_NOT_A_NUMBER = "value is not a phone number"
REASON_PHONE_TOO_SHORT = "phone number is too short"
REASON_PHONE_TOO_LONG = "phone number is too long"
REASON_PHONE_NOT_POSSIBLE = "phone number is not a possible number for its country"
REASON_PHONE_LOCAL_ONLY = "phone number lacks an area code (only diallable locally)"

# --- shared constants, compiled once --------------------------------------------------------

# Every character for which str.isspace() is true (checked by a test), plus zero-width
# characters and the BOM that real-world exports leave around values.
_EDGE_CHARS = (
    "\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
    "\u200b\u200c\u200d\u2060\ufeff"
)
_MAX_RAW_LENGTH = 1024  # checked before any work, so a huge payload costs nothing
_MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit, in characters

_GMAIL_DOMAIN = "gmail.com"
_ASCII_SPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f]")
# RFC 5322 specials that are only legal inside a quoted local part (not supported).
_LOCAL_FORBIDDEN = re.compile(r'["(),:;<>\[\\\]]')
# A label character: ASCII lowercase letter, digit or hyphen, or any non-ASCII character.
_LABEL = r"[^\x00-\x2c\x2e\x2f\x3a-\x60\x7b-\x7f]+"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")
# Format characters allowed inside a name (IDNA CONTEXTJ: ZWNJ/ZWJ in Indic, Persian, emoji).
_ALLOWED_FORMAT_CHARS = frozenset("\u200c\u200d")


def _has_bad_unicode_char(s: str) -> bool:
    """Whitespace, control, surrogate or invisible format character inside a non-ASCII string."""
    for ch in s:
        if ch.isspace():
            return True
        if ch.isascii():
            if ch < " " or ch == "\x7f":
                return True
            continue
        category = unicodedata.category(ch)
        if category in ("Cc", "Cs") or (category == "Cf" and ch not in _ALLOWED_FORMAT_CHARS):
            return True
    return False


def normalize_email(raw: str) -> str:
    """Return the UID2-compatible normalized form of an e-mail address.

    Steps: strip edge whitespace, lowercase, NFC for non-ASCII, Gmail rule for ``gmail.com``
    only. Raises :class:`InvalidIdentifier` (reason without the value) when the address is not
    a plausible single mailbox; see the module docstring for the exact rules.

    >>> normalize_email("  Jane.Doe+News@GMail.com ")
    'janedoe@gmail.com'
    >>> normalize_email("Jane.Doe+News@example.com")
    'jane.doe+news@example.com'
    """
    if not isinstance(raw, str):
        raise InvalidIdentifier(REASON_NOT_A_STRING)
    if len(raw) > _MAX_RAW_LENGTH:
        raise InvalidIdentifier(REASON_TOO_LONG)
    s = raw.strip(_EDGE_CHARS).lower()
    if not s:
        raise InvalidIdentifier(REASON_EMPTY)
    if s.isascii():
        if _ASCII_SPACE_OR_CONTROL.search(s):
            raise InvalidIdentifier(REASON_EMAIL_WHITESPACE)
    else:
        if _has_bad_unicode_char(s):
            raise InvalidIdentifier(REASON_EMAIL_WHITESPACE)
        if not unicodedata.is_normalized("NFC", s):
            s = unicodedata.normalize("NFC", s)

    at_signs = s.count("@")
    if at_signs != 1:
        raise InvalidIdentifier(REASON_EMAIL_NO_AT if at_signs == 0 else REASON_EMAIL_MANY_AT)
    local, _, domain = s.partition("@")
    if not local:
        raise InvalidIdentifier(REASON_EMAIL_EMPTY_LOCAL)
    if not domain:
        raise InvalidIdentifier(REASON_EMAIL_EMPTY_DOMAIN)
    if _LOCAL_FORBIDDEN.search(local):
        raise InvalidIdentifier(REASON_EMAIL_LOCAL_CHARS)
    if "." not in domain:
        raise InvalidIdentifier(REASON_EMAIL_DOMAIN_NO_DOT)
    if not _DOMAIN.fullmatch(domain) or domain.rpartition(".")[2].isdigit():
        raise InvalidIdentifier(REASON_EMAIL_DOMAIN_INVALID)

    if domain == _GMAIL_DOMAIN:
        local = local.partition("+")[0].replace(".", "")
        if not local:
            raise InvalidIdentifier(REASON_EMAIL_EMPTY_LOCAL_GMAIL)

    normalized = f"{local}@{domain}"
    if len(normalized) > _MAX_EMAIL_LENGTH:
        raise InvalidIdentifier(REASON_TOO_LONG)
    return normalized


# --- phone ------------------------------------------------------------------------------------

_MAX_RAW_PHONE_LENGTH = 100
_PLUS_CHARS = "+\uff0b"  # ASCII and full-width plus, as libphonenumber accepts
_LETTER = re.compile(r"[^\W\d_]")  # any Unicode letter
# A trailing extension introduced by a word or sign; only used to tell an extension marker
# ("ext. 12", "x12", "#12", ";ext=12") from vanity letters. libphonenumber drops it either way.
_EXTENSION_SUFFIX = re.compile(
    r"(?:;ext=|[\s,;]*(?:extension|extn|ext|xtn|anexo|доб|x|\#)\.?[\s:]*)\d{1,10}\#?$",
    re.IGNORECASE,
)
_E164 = re.compile(r"\+[1-9][0-9]{7,14}")
_PARSE_ERROR_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: REASON_PHONE_COUNTRY_CODE,
    NumberParseException.NOT_A_NUMBER: REASON_PHONE_NOT_A_NUMBER,
    NumberParseException.TOO_SHORT_AFTER_IDD: REASON_PHONE_TOO_SHORT,
    NumberParseException.TOO_SHORT_NSN: REASON_PHONE_TOO_SHORT,
    NumberParseException.TOO_LONG: REASON_PHONE_TOO_LONG,
}
_SUPPORTED_REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)


def _check_region(default_region: str | None) -> str | None:
    if not default_region:
        return None
    region = default_region.upper()
    if region not in _SUPPORTED_REGIONS:
        # A configuration error (connector/tenant country), not a bad identifier: fail loudly.
        raise ValueError(f"unsupported default_region {default_region!r} (ISO 3166 alpha-2)")
    return region


def normalize_phone(raw: str, default_region: str | None) -> str:
    """Return the E.164 form (``+`` and 8 to 15 digits) of a phone number.

    - ``+`` (or full-width ``＋``) and ``00`` international prefixes are parsed without a
      region; ``tel:`` URIs are accepted.
    - Any other number is national and parsed with ``default_region`` (ISO 3166 alpha-2, e.g.
      the connector's store country; case-insensitive; the region's own international prefix,
      such as ``011`` in the US, works too). With ``default_region=None`` national numbers are
      rejected rather than guessed. An unknown region raises a plain ``ValueError`` (it is a
      configuration bug, not a bad identifier).
    - Accepted when libphonenumber says ``IS_POSSIBLE`` (the length fits the country). Numbers
      only diallable locally (a US number without its area code) are rejected. Validity against
      the numbering plan (``is_valid_number``) is deliberately not required: plans change
      faster than the library ships, and possibility is the DESIGN.md §6 bar.
    - Extensions ("ext. 12", "x12", "#12", ";ext=12") are dropped.
    - Letters are rejected: vanity numbers ("1-800-FLOWERS") are not converted to digits, since
      a shopper's own number never needs that and letters usually mean the field holds text.

    Raises :class:`InvalidIdentifier` with a fixed reason that never contains the input.

    >>> normalize_phone("(650) 253-0000 ext. 12", "US")
    '+16502530000'
    >>> normalize_phone("0044 20 7946 0018", None)
    '+442079460018'
    """
    if not isinstance(raw, str):
        raise InvalidIdentifier(REASON_NOT_A_STRING)
    region = _check_region(default_region)
    if len(raw) > _MAX_RAW_PHONE_LENGTH:
        raise InvalidIdentifier(REASON_TOO_LONG)
    s = raw.strip(_EDGE_CHARS)
    if s[:4].lower() == "tel:":
        s = s[4:].lstrip(_EDGE_CHARS)
    if not s:
        raise InvalidIdentifier(REASON_EMPTY)

    if _LETTER.search(s):
        extension = _EXTENSION_SUFFIX.search(s)
        if extension is not None:
            s = s[: extension.start()].rstrip(_EDGE_CHARS)
        if _LETTER.search(s):
            raise InvalidIdentifier(REASON_PHONE_LETTERS)
        if not s:  # an extension alone ("x12", "ext. 5"): no number
            raise InvalidIdentifier(REASON_PHONE_NOT_A_NUMBER)

    if s.startswith("00"):
        s = "+" + s[2:]
    if s[0] in _PLUS_CHARS:
        region = None
    elif region is None:
        raise InvalidIdentifier(REASON_PHONE_NO_REGION)

    try:
        number = phonenumbers.parse(s, region)
    except NumberParseException as exc:
        reason = _PARSE_ERROR_REASONS.get(exc.error_type, REASON_PHONE_NOT_A_NUMBER)
        raise InvalidIdentifier(reason) from None

    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible != ValidationResult.IS_POSSIBLE:
        if possible == ValidationResult.IS_POSSIBLE_LOCAL_ONLY:
            raise InvalidIdentifier(REASON_PHONE_LOCAL_ONLY)
        if possible == ValidationResult.TOO_SHORT:
            raise InvalidIdentifier(REASON_PHONE_TOO_SHORT)
        if possible == ValidationResult.TOO_LONG:
            raise InvalidIdentifier(REASON_PHONE_TOO_LONG)
        if possible == ValidationResult.INVALID_COUNTRY_CODE:
            raise InvalidIdentifier(REASON_PHONE_COUNTRY_CODE)
        raise InvalidIdentifier(REASON_PHONE_NOT_POSSIBLE)

    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)  # extension not included
    if number.italian_leading_zero and not _round_trips(e164):
        # Several leading zeros after the country code (e.g. +49 0000001): libphonenumber's
        # E.164 of such a number parses back to another one. Found by the idempotence
        # property test; checked only for leading-zero numbers, which are rare.
        raise InvalidIdentifier(REASON_PHONE_NOT_POSSIBLE)
    if not _E164.fullmatch(e164):
        raise InvalidIdentifier(
            REASON_PHONE_TOO_SHORT if len(e164) < 9 else REASON_PHONE_NOT_POSSIBLE
        )
    return e164


def _round_trips(e164: str) -> bool:
    try:
        again = phonenumbers.parse(e164, None)
    except NumberParseException:
        return False
    return phonenumbers.format_number(again, PhoneNumberFormat.E164) == e164
