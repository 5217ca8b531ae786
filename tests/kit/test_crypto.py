"""Credential encryption: round trip, versioned format, tamper and AAD checks."""

from __future__ import annotations

import uuid

import pytest

from athos_identity.kit import crypto
from athos_identity.kit.crypto import (
    CredentialDecryptionError,
    decrypt_credential,
    encrypt_credential,
    key_version_of,
)

MASTER = b"k" * 32
TENANT = uuid.UUID("11111111-1111-1111-1111-111111111111")
CONNECTOR = uuid.UUID("22222222-2222-2222-2222-222222222222")
SECRET = "abcdefghijklmnopqrstuvwxyz01234"


def seal(plaintext: str = SECRET, **kw: object) -> bytes:
    args: dict[str, object] = {
        "tenant_id": TENANT,
        "connector_id": CONNECTOR,
        "purpose": "bigcommerce_token",
        "version": 1,
        "master": MASTER,
    }
    args.update(kw)
    return encrypt_credential(plaintext, **args)  # type: ignore[arg-type]


def open_(ciphertext: bytes, **kw: object) -> str:
    args: dict[str, object] = {
        "tenant_id": TENANT,
        "connector_id": CONNECTOR,
        "purpose": "bigcommerce_token",
        "master": MASTER,
    }
    args.update(kw)
    return decrypt_credential(ciphertext, **args)  # type: ignore[arg-type]


def test_round_trip_and_fresh_nonce() -> None:
    first, second = seal(), seal()
    assert open_(first) == SECRET and open_(second) == SECRET
    assert first != second, "a random nonce per encryption"
    assert SECRET.encode() not in first
    assert open_(seal("ünïcode ✓")) == "ünïcode ✓"


def test_format_carries_version_and_nonce() -> None:
    ciphertext = seal(version=7)
    assert ciphertext[0] == crypto.FORMAT_VERSION
    assert int.from_bytes(ciphertext[1:3], "big") == 7
    assert key_version_of(ciphertext) == 7
    # header 3 + nonce 12 + plaintext + tag 16
    assert len(ciphertext) == 3 + crypto.NONCE_SIZE + len(SECRET) + 16
    assert open_(ciphertext) == SECRET


def test_versions_use_different_keys() -> None:
    v1, v2 = seal(version=1), seal(version=2)
    forged = v1[:1] + v2[1:3] + v1[3:]  # relabel a v1 ciphertext as v2
    with pytest.raises(CredentialDecryptionError):
        open_(forged)
    assert open_(v2) == SECRET


@pytest.mark.parametrize("position", [0, 3, 10, 20, -1])
def test_any_altered_byte_is_detected(position: int) -> None:
    ciphertext = bytearray(seal())
    ciphertext[position] ^= 0x01
    with pytest.raises(CredentialDecryptionError) as caught:
        open_(bytes(ciphertext))
    assert SECRET not in str(caught.value)


def test_truncated_is_rejected() -> None:
    with pytest.raises(CredentialDecryptionError):
        open_(seal()[:20])


@pytest.mark.parametrize(
    "other",
    [
        {"tenant_id": uuid.uuid4()},
        {"connector_id": uuid.uuid4()},
        {"purpose": "shopify_refresh"},
        {"master": b"x" * 32},
    ],
)
def test_ciphertext_bound_to_its_row_and_key(other: dict[str, object]) -> None:
    with pytest.raises(CredentialDecryptionError) as caught:
        open_(seal(), **other)
    assert caught.value.status == 500
    assert "decrypted" in caught.value.detail


def test_default_version_and_master_come_from_settings() -> None:
    from athos_identity.settings import Settings, get_settings, use_settings

    previous = get_settings()
    use_settings(Settings(master_secret="m" * 40, credentials_key_version=3, _env_file=None))
    try:
        ciphertext = encrypt_credential(
            SECRET, tenant_id=TENANT, connector_id=CONNECTOR, purpose="p"
        )
        assert key_version_of(ciphertext) == 3
        assert not crypto.needs_reencryption(ciphertext)
        assert crypto.needs_reencryption(seal(version=1))
        assert (
            decrypt_credential(ciphertext, tenant_id=TENANT, connector_id=CONNECTOR, purpose="p")
            == SECRET
        )
    finally:
        use_settings(previous)


def test_mask_shows_last_four_only() -> None:
    assert crypto.mask(SECRET) == "…" + SECRET[-4:]
    assert crypto.mask("short") == "…"
