"""Digests, pre-hashed values and tenant keys (DESIGN.md §6). Pure: no database."""

import base64
import hashlib
import hmac
import string
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from athos_identity.identity import hashing, normalize
from athos_identity.identity.hashing import (
    REASON_PREHASHED,
    HashedIdentifier,
    IdentifierKind,
    InvalidIdentifier,
    TenantHasher,
    hash_email,
    hash_phone,
    hash_prehashed,
    identifier_digest,
    parse_prehashed,
)
from athos_identity.identity.normalize import normalize_email, normalize_phone

MASTER = bytes(range(32))
OTHER_MASTER = bytes(range(1, 33))
TENANT_A = uuid.UUID("00000000-0000-4000-8000-00000000000a")
TENANT_B = uuid.UUID("00000000-0000-4000-8000-00000000000b")


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


# --------------------------------------------------------------------------------------------
# Known answers
# --------------------------------------------------------------------------------------------

# UID2 "Normalization and Encoding":
# https://unifiedid.com/docs/getting-started/gs-normalization-encoding
# (IABTechLab/uid2docs, docs/getting-started/gs-normalization-encoding.md)
# raw value, SHA-256 hex of the normalized value, base64 of the same 32 bytes.
UID2_DOC_EMAIL_HASHES = [
    (
        "USER@example.com",
        "b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514",
        "tMmiiTI7IaAcPpQPFQ65uMVCWH8av9jw4cwf/F5HVRQ=",
    ),
    (
        "MyEmail@example.com",
        "16c18d336f0b250f0e2d907452ceb9658a74ecdae8bc94864c23122a72cc27a5",
        "FsGNM28LJQ8OLZB0Us65ZYp07NrovJSGTCMSKnLMJ6U=",
    ),
    (
        "MYEMAIL@example.com",
        "16c18d336f0b250f0e2d907452ceb9658a74ecdae8bc94864c23122a72cc27a5",
        "FsGNM28LJQ8OLZB0Us65ZYp07NrovJSGTCMSKnLMJ6U=",
    ),
    (
        "My.Email@example.com",
        "e22b53bc6f871274f3a62ab37a3caed7214fc14d676215a96a242fcfada1c81f",
        "4itTvG+HEnTzpiqzejyu1yFPwU1nYhWpaiQvz62hyB8=",
    ),
    (
        "JANESAOIRSE@example.com",
        "d6670e7a92007f1b5ff785f1fc81e53aa6d3d7bd06bdf5c473cdc7286c284b6d",
        "1mcOepIAfxtf94Xx/IHlOqbT170GvfXEc83HKGwoS20=",
    ),
    (
        "Jane.Saoirse@example.com",
        "b196432c7b989a2ca91c83799957c515da53e6c13abf20b78fea94f117e90bf8",
        "sZZDLHuYmiypHIN5mVfFFdpT5sE6vyC3j+qU8RfpC/g=",
    ),
    (
        "JaneSaoirse+Work@example.com",
        "28aaee4815230cd3b4ebd88c515226550666e91ac019929e3adac3f66c288180",
        "KKruSBUjDNO069iMUVImVQZm6RrAGZKeOtrD9mwogYA=",
    ),
    (
        "JANE.SAOIRSE@gmail.com",
        "92ee26057ed9dea2535d6c8b141d48373932476599196e00352254896db5888f",
        "ku4mBX7Z3qJTXWyLFB1INzkyR2WZGW4ANSJUiW21iI8=",
    ),
    (
        "JaneSaoirse+Work@gmail.com",
        "92ee26057ed9dea2535d6c8b141d48373932476599196e00352254896db5888f",
        "ku4mBX7Z3qJTXWyLFB1INzkyR2WZGW4ANSJUiW21iI8=",
    ),
]

# UID2 Python SDK test vectors (base64 only), IABTechLab/uid2-client-python,
# tests/test_normalization.py::test_valid_email_normalization.
UID2_SDK_EMAIL_HASHES = [
    ("TEst.TEST@Test.com ", "dvECjPKZHya0/SIhSGwP0m8SgTv1vzLxPULUOsm880M="),
    ("test.test@gmail.com", "LkLfFrut8Tc3h/fIvYDiBKSbaMiau/DtaLBPQYszdMw="),
    ("test+test@test.com", "rQ4yzdOz4uG8N54326QyZD6/JwqrXn4lmy34cVCojB8="),
    ("+test@test.com", "weFizOVVWKlLfyorbBU8oxYDv4HJtTZCPMyZ4THzUQE="),
    ("test+test@gmail.com", "h5JGBrQTGorO7q6IaFMfu5cSqqB6XTp1aybOD11spnQ="),
    ("  testtest@test.com  ", "d1Lr/s4GLLX3SvQVMoQdIMfbQPMAGZYry+2V+0pZlQg="),
    ("TEst.TEst+123@GMail.Com", "LkLfFrut8Tc3h/fIvYDiBKSbaMiau/DtaLBPQYszdMw="),
    ("😊testtest@test.com", "fAFEUqApQ0V/M9mLj/IO54CgKgtQuARKsOMqtFklD4k="),
    ("testtest@😊test.com", "tcng5pttf7Y2z4ylZTROvIMw1+IVrMpR4D1KeXSrdiM="),
    ("testtest@test.com😊", "0qI21FPLkuez/8RswfmircHPYz9Dtf7/Nch1rSWEQf0="),
]


@pytest.mark.parametrize(("raw", "hex_digest", "b64_digest"), UID2_DOC_EMAIL_HASHES)
def test_uid2_documented_email_hashes(raw: str, hex_digest: str, b64_digest: str) -> None:
    digest = identifier_digest(normalize_email(raw))
    assert digest.hex() == hex_digest
    assert b64(digest) == b64_digest
    assert parse_prehashed(hex_digest) == digest
    assert parse_prehashed(hex_digest.upper()) == digest
    assert parse_prehashed(b64_digest) == digest


@pytest.mark.parametrize(("raw", "b64_digest"), UID2_SDK_EMAIL_HASHES)
def test_uid2_sdk_email_hashes(raw: str, b64_digest: str) -> None:
    assert b64(identifier_digest(normalize_email(raw))) == b64_digest


def test_uid2_documented_phone_hash() -> None:
    # Same UID2 page, "Phone Number Hash Encoding": +12345678901.
    digest = identifier_digest(normalize_phone("1 (234) 567-8901", "US"))
    assert digest.hex() == "10e6f0b47054a83359477dcb35231db6de5c69fb1816e1a6b98e192de9e5b9ee"
    assert b64(digest) == "EObwtHBUqDNZR33LNSMdtt5cafsYFuGmuY4ZLenlue4="


def _rfc5869_hkdf_sha256(ikm: bytes, info: bytes, length: int = 32) -> bytes:
    """Independent HKDF (RFC 5869) with an empty salt, to cross-check the library call."""
    prk = hmac.new(b"\x00" * 32, ikm, hashlib.sha256).digest()
    okm, block, counter = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


@pytest.mark.parametrize("version", [1, 2, 17])
def test_tenant_key_derivation_matches_the_spec(version: int) -> None:
    info = f"athos-identity/v{version}/{TENANT_A}".encode()
    expected_k = _rfc5869_hkdf_sha256(MASTER, info)
    digest = identifier_digest("jane@example.com")
    expected = hmac.new(expected_k, digest, hashlib.sha256).digest()
    assert TenantHasher(MASTER, TENANT_A, version).key_for(digest) == expected


def test_design_label_for_version_one() -> None:
    # DESIGN.md §6: info = "athos-identity/v1/" + tenant_id, lowercase hyphenated UUID.
    k = _rfc5869_hkdf_sha256(MASTER, b"athos-identity/v1/00000000-0000-4000-8000-00000000000a")
    digest = bytes(32)
    assert TenantHasher(MASTER, TENANT_A).key_for(digest) == hmac.digest(k, digest, "sha256")


# --------------------------------------------------------------------------------------------
# parse_prehashed
# --------------------------------------------------------------------------------------------

DIGEST = hashlib.sha256(b"jane@example.com").digest()


@pytest.mark.parametrize(
    "value",
    [
        DIGEST.hex(),
        DIGEST.hex().upper(),
        DIGEST.hex()[:32].upper() + DIGEST.hex()[32:],
        b64(DIGEST),
        f"  {DIGEST.hex()}\n",
        f"\t{b64(DIGEST)} ",
    ],
)
def test_parse_prehashed_accepts_hex_and_base64(value: str) -> None:
    assert parse_prehashed(value) == DIGEST


def _non_canonical_b64(digest: bytes) -> str:
    text = b64(digest)
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "+/"
    last = alphabet.index(text[42])
    return text[:42] + alphabet[last | 1 if last % 4 == 0 else last & ~3] + "="


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        DIGEST.hex()[:-1],  # 63
        DIGEST.hex() + "0",  # 65
        DIGEST.hex()[:-1] + "g",  # not hex
        " ".join(DIGEST.hex()[i : i + 2] for i in range(0, 64, 2)),  # bytes.fromhex would eat it
        b64(DIGEST).rstrip("="),  # 43, unpadded
        b64(DIGEST)[:-1] + "A",  # 44 but no padding
        base64.urlsafe_b64encode(b"\xfb" * 32).decode(),  # URL-safe alphabet
        b64(DIGEST)[:10] + "*" + b64(DIGEST)[11:],
        _non_canonical_b64(DIGEST),
        b64(hashlib.sha1(b"x").digest()),  # a SHA-1, 28 chars
        b64(hashlib.sha512(b"x").digest()),  # a SHA-512, 88 chars
        hashlib.sha512(b"x").hexdigest(),  # 128 hex
        "jane@example.com",
    ],
)
def test_parse_prehashed_rejects_everything_else(value: str) -> None:
    with pytest.raises(InvalidIdentifier) as info:
        parse_prehashed(value)
    assert info.value.reason == REASON_PREHASHED
    if value.strip():
        assert value.strip() not in str(info.value)


def test_non_canonical_helper_really_decodes_to_the_digest() -> None:
    value = _non_canonical_b64(DIGEST)
    assert value != b64(DIGEST)
    assert base64.b64decode(value) == DIGEST


@pytest.mark.parametrize("value", [None, DIGEST, 42])
def test_parse_prehashed_rejects_non_strings(value: object) -> None:
    with pytest.raises(InvalidIdentifier):
        parse_prehashed(value)  # type: ignore[arg-type]


def test_identifier_digest_rejects_unencodable_text_without_echo() -> None:
    with pytest.raises(InvalidIdentifier) as info:
        identifier_digest("jane\ud800@example.com")
    assert "jane" not in str(info.value)
    assert info.value.__cause__ is None


# --------------------------------------------------------------------------------------------
# TenantHasher
# --------------------------------------------------------------------------------------------


def test_hasher_basics() -> None:
    hasher = TenantHasher(MASTER, TENANT_A)
    assert hasher.version == 1
    assert hasher.tenant_id == TENANT_A
    key = hasher.key_for(DIGEST)
    assert isinstance(key, bytes) and len(key) == 32
    assert key != DIGEST
    assert hasher.key_for(DIGEST) == key  # deterministic
    hashed = hasher.hashed(IdentifierKind.EMAIL, DIGEST)
    assert hashed == HashedIdentifier(IdentifierKind.EMAIL, key, 1)
    with pytest.raises(AttributeError):
        hashed.key = b"x"  # type: ignore[misc]


def test_hasher_never_shows_key_material() -> None:
    hasher = TenantHasher(MASTER, TENANT_A)
    text = repr(hasher) + str(hasher)
    assert str(TENANT_A) in text
    for secret in (MASTER, hasher._key):
        assert secret.hex() not in text
        assert repr(secret) not in text


def test_derived_key_is_cached() -> None:
    hashing._derive_tenant_key.cache_clear()
    for _ in range(5):
        TenantHasher(MASTER, TENANT_A, 3)
    info = hashing._derive_tenant_key.cache_info()
    assert info.misses == 1
    assert info.hits == 4


@pytest.mark.parametrize(
    ("master", "tenant", "version", "error"),
    [
        (b"short", TENANT_A, 1, ValueError),
        ("x" * 32, TENANT_A, 1, ValueError),
        (MASTER, str(TENANT_A), 1, TypeError),
        (MASTER, TENANT_A, 0, ValueError),
        (MASTER, TENANT_A, -1, ValueError),
        (MASTER, TENANT_A, True, ValueError),
        (MASTER, TENANT_A, "1", ValueError),
    ],
)
def test_hasher_rejects_bad_construction(
    master: object, tenant: object, version: object, error: type[Exception]
) -> None:
    with pytest.raises(error):
        TenantHasher(master, tenant, version)  # type: ignore[arg-type]


@pytest.mark.parametrize("digest", [b"", b"x" * 31, b"x" * 33, DIGEST.hex().encode()])
def test_key_for_requires_a_32_byte_digest(digest: bytes) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        TenantHasher(MASTER, TENANT_A).key_for(digest)


digests = st.binary(min_size=32, max_size=32)
tenants = st.uuids()


@settings(max_examples=200, deadline=None)
@given(digests, tenants, tenants)
def test_two_tenants_get_different_keys_for_the_same_digest(
    digest: bytes, tenant_1: uuid.UUID, tenant_2: uuid.UUID
) -> None:
    key_1 = TenantHasher(MASTER, tenant_1).key_for(digest)
    key_2 = TenantHasher(MASTER, tenant_2).key_for(digest)
    assert (key_1 == key_2) == (tenant_1 == tenant_2)


@settings(max_examples=200, deadline=None)
@given(digests, tenants, st.integers(1, 1000), st.integers(1, 1000))
def test_key_version_changes_the_key(
    digest: bytes, tenant: uuid.UUID, version_1: int, version_2: int
) -> None:
    # Even with the same master secret, a new version yields a new key.
    hasher_1 = TenantHasher(MASTER, tenant, version_1)
    hasher_2 = TenantHasher(MASTER, tenant, version_2)
    assert (hasher_1.key_for(digest) == hasher_2.key_for(digest)) == (version_1 == version_2)
    assert hasher_2.hashed(IdentifierKind.PHONE, digest).key_version == version_2


@settings(max_examples=100, deadline=None)
@given(digests, tenants)
def test_master_secret_changes_the_key(digest: bytes, tenant: uuid.UUID) -> None:
    assert TenantHasher(MASTER, tenant).key_for(digest) != TenantHasher(
        OTHER_MASTER, tenant
    ).key_for(digest)


# --------------------------------------------------------------------------------------------
# Convenience functions and equivalence properties
# --------------------------------------------------------------------------------------------

HASHER = TenantHasher(MASTER, TENANT_A)

simple_locals = st.text(st.sampled_from(string.ascii_lowercase + string.digits), min_size=1)
simple_domains = st.sampled_from(
    ["example.com", "shop.example.co.uk", "gmail.com", "googlemail.com", "outlook.fr", "web.de"]
)


@st.composite
def email_variants(draw: st.DrawFn) -> tuple[str, str]:
    """(canonical address, a messy spelling of the same mailbox)."""
    local = draw(simple_locals)
    domain = draw(simple_domains)
    canonical = f"{local}@{domain}"
    messy_local = local
    if domain == "gmail.com":
        # dots anywhere, a +tag (which may itself contain dots and pluses)
        chars = [c + draw(st.sampled_from(["", "", ".", ".."])) for c in local]
        messy_local = draw(st.sampled_from(["", "."])) + "".join(chars)
        if draw(st.booleans()):
            messy_local += "+" + draw(st.text(st.sampled_from("abc.+-_1"), max_size=8))
    raw = f"{messy_local}@{domain}"
    raw = "".join(c.upper() if draw(st.booleans()) else c for c in raw)
    left = draw(st.sampled_from(["", " ", "\t", "\u00a0", "\ufeff", " \n"]))
    right = draw(st.sampled_from(["", " ", "\r\n", "\u3000", "\u200b"]))
    return canonical, f"{left}{raw}{right}"


@settings(max_examples=300, deadline=None)
@given(email_variants())
def test_equivalent_emails_hash_the_same(pair: tuple[str, str]) -> None:
    canonical, messy = pair
    assert normalize_email(messy) == canonical
    assert hash_email(messy, HASHER) == hash_email(canonical, HASHER)


def test_non_gmail_tags_and_dots_are_different_mailboxes() -> None:
    base = hash_email("jane.doe@example.com", HASHER)
    assert hash_email("janedoe@example.com", HASHER) != base
    assert hash_email("jane.doe+shop@example.com", HASHER) != base
    assert hash_email("Jane.Doe@googlemail.com", HASHER) != hash_email("janedoe@gmail.com", HASHER)


@settings(max_examples=300, deadline=None)
@given(email_variants())
def test_prehashed_forms_key_like_the_raw_value(pair: tuple[str, str]) -> None:
    canonical, messy = pair
    digest = hashlib.sha256(canonical.encode()).digest()
    expected = hash_email(messy, HASHER)
    for form in (digest.hex(), digest.hex().upper(), b64(digest)):
        assert parse_prehashed(form) == identifier_digest(normalize_email(messy))
        assert hash_prehashed(IdentifierKind.EMAIL, form, HASHER) == expected


PHONE_SPELLINGS = [
    ("+44 20 7946 0018", None),
    ("020 7946 0018", "GB"),
    ("(020) 7946-0018", "gb"),
    ("0044 20 7946 0018", None),
    ("+44 (0)20 7946 0018 ext. 12", None),
    ("tel:+44-20-7946-0018", None),
    ("+442079460018", "FR"),
]


@pytest.mark.parametrize(("raw", "region"), PHONE_SPELLINGS)
def test_equivalent_phones_hash_the_same(raw: str, region: str | None) -> None:
    expected_digest = hashlib.sha256(b"+442079460018").digest()
    hashed = hash_phone(raw, region, HASHER)
    assert hashed == HashedIdentifier(IdentifierKind.PHONE, HASHER.key_for(expected_digest), 1)
    assert hash_prehashed(IdentifierKind.PHONE, b64(expected_digest), HASHER) == hashed
    assert hash_prehashed(IdentifierKind.PHONE, expected_digest.hex(), HASHER) == hashed


def test_same_value_as_email_or_phone_differ_only_by_kind() -> None:
    email = hash_prehashed(IdentifierKind.EMAIL, DIGEST.hex(), HASHER)
    phone = hash_prehashed(IdentifierKind.PHONE, DIGEST.hex(), HASHER)
    assert email.key == phone.key  # the kind is a separate column of the link
    assert email != phone


def test_convenience_functions_propagate_invalid_identifier() -> None:
    with pytest.raises(InvalidIdentifier):
        hash_email("not an e-mail", HASHER)
    with pytest.raises(InvalidIdentifier):
        hash_phone("06 12 34 56 78", None, HASHER)
    with pytest.raises(InvalidIdentifier):
        hash_prehashed(IdentifierKind.EMAIL, "abc", HASHER)


def test_identifier_kind_values_are_the_api_words() -> None:
    assert [k.value for k in IdentifierKind] == ["email", "phone"]
    assert IdentifierKind("email") is IdentifierKind.EMAIL


# --------------------------------------------------------------------------------------------
# docs/messaging.md must not drift from the code
# --------------------------------------------------------------------------------------------

MESSAGING_DOC = Path(__file__).resolve().parents[2] / "docs" / "messaging.md"


def _doc_example_rows() -> list[list[str]]:
    rows = []
    for line in MESSAGING_DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and all(c.startswith("`") or c == "–" for c in cells):
            rows.append([c.strip("`") if c != "–" else "" for c in cells])
    return rows


def test_messaging_doc_worked_examples_are_correct() -> None:
    rows = _doc_example_rows()
    assert len(rows) >= 10
    for raw, region, normalized, hex_digest, b64_digest in rows:
        if normalized.startswith("+"):
            assert normalize_phone(raw, region or None) == normalized
        else:
            assert normalize_email(raw) == normalized
        digest = identifier_digest(normalized)
        assert digest.hex() == hex_digest
        assert b64(digest) == b64_digest


def test_messaging_doc_lists_every_rejection_reason() -> None:
    text = " ".join(MESSAGING_DOC.read_text(encoding="utf-8").split())
    reasons = {
        value
        for module in (normalize, hashing)
        for name, value in vars(module).items()
        if name.startswith("REASON_")
    }
    for reason in reasons:
        assert f"`{reason}`" in text
