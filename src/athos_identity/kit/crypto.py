"""Encryption at rest of platform credentials (DESIGN.md §2.3): AES-256-GCM, versioned keys.

    K_v        = HKDF-SHA256(master secret, salt=None,
                             info=b"athos-identity/credentials/v{v}", length=32)
    ciphertext = b"\\x01" | v (2 bytes, big endian) | nonce (12 random bytes) | AES-GCM(K_v)
    AAD        = header (format byte and version) | "tenant_id|connector_id|purpose"

- The version travels in the ciphertext (and in a `key_version` column next to it), so a
  new `ATHOS_CREDENTIALS_KEY_VERSION` encrypts new writes with a new key while old rows
  still decrypt; `needs_reencryption()` tells a rotation job which rows to rewrite.
- The associated data binds a ciphertext to its row: copied to another tenant, connector
  or purpose (e.g. a refresh token pasted over an access token) it fails to decrypt.
- Decryption failures raise `CredentialDecryptionError`, whose message names no secret.
"""

from __future__ import annotations

import os
import struct
import uuid
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from athos_identity.kit.errors import AppError
from athos_identity.settings import get_settings

__all__ = [
    "FORMAT_VERSION",
    "NONCE_SIZE",
    "CredentialDecryptionError",
    "decrypt_credential",
    "encrypt_credential",
    "key_version_of",
    "mask",
    "needs_reencryption",
]

FORMAT_VERSION = 1
NONCE_SIZE = 12
_HEADER = struct.Struct(">BH")  # format byte, key version
_INFO_PREFIX = b"athos-identity/credentials/v"
_MAX_KEY_VERSION = 0xFFFF


class CredentialDecryptionError(AppError):
    """A stored credential cannot be read: altered, moved to another row, or wrong key."""

    status, title, slug = 500, "Stored credential unreadable", "credential-unreadable"

    def __init__(
        self,
        detail: str = "A stored platform credential could not be decrypted "
        "(the data was altered or the master secret changed).",
    ) -> None:
        super().__init__(detail)


@lru_cache(maxsize=64)
def _derive_key(master: bytes, version: int) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=_INFO_PREFIX + str(version).encode(),
    ).derive(master)


def _key(version: int, master: bytes | None) -> bytes:
    if not 1 <= version <= _MAX_KEY_VERSION:
        raise ValueError(f"key version must be between 1 and {_MAX_KEY_VERSION}")
    return _derive_key(master if master is not None else get_settings().master_key, version)


def _associated_data(
    header: bytes, tenant_id: uuid.UUID, connector_id: uuid.UUID, purpose: str
) -> bytes:
    if "|" in purpose or not purpose:
        raise ValueError("purpose must be a non-empty label without '|'")
    return header + f"{tenant_id}|{connector_id}|{purpose}".encode()


def current_key_version() -> int:
    return get_settings().credentials_key_version


def encrypt_credential(
    plaintext: str,
    *,
    tenant_id: uuid.UUID,
    connector_id: uuid.UUID,
    purpose: str,
    version: int | None = None,
    master: bytes | None = None,
) -> bytes:
    """Encrypt a secret for one (tenant, connector, purpose) with the current key version."""
    version = current_key_version() if version is None else version
    header = _HEADER.pack(FORMAT_VERSION, version)
    nonce = os.urandom(NONCE_SIZE)
    aad = _associated_data(header, tenant_id, connector_id, purpose)
    sealed = AESGCM(_key(version, master)).encrypt(nonce, plaintext.encode(), aad)
    return header + nonce + sealed


def key_version_of(ciphertext: bytes) -> int:
    """The key version a ciphertext was made with (raises if it is not one of ours)."""
    if len(ciphertext) < _HEADER.size + NONCE_SIZE + 16:
        raise CredentialDecryptionError("A stored platform credential is truncated.")
    fmt, version = _HEADER.unpack_from(ciphertext)
    if fmt != FORMAT_VERSION:
        raise CredentialDecryptionError("A stored platform credential has an unknown format.")
    return int(version)


def decrypt_credential(
    ciphertext: bytes,
    *,
    tenant_id: uuid.UUID,
    connector_id: uuid.UUID,
    purpose: str,
    master: bytes | None = None,
) -> str:
    """The secret back; `CredentialDecryptionError` when anything does not match."""
    version = key_version_of(ciphertext)
    header = ciphertext[: _HEADER.size]
    nonce = ciphertext[_HEADER.size : _HEADER.size + NONCE_SIZE]
    sealed = ciphertext[_HEADER.size + NONCE_SIZE :]
    aad = _associated_data(header, tenant_id, connector_id, purpose)
    try:
        return AESGCM(_key(version, master)).decrypt(nonce, sealed, aad).decode()
    except (InvalidTag, UnicodeDecodeError):
        raise CredentialDecryptionError() from None


def needs_reencryption(ciphertext: bytes) -> bool:
    """True when the ciphertext was made with another key version than the current one."""
    return key_version_of(ciphertext) != current_key_version()


def mask(secret: str, visible: int = 4) -> str:
    """The last `visible` characters only (the hint shown in the console), e.g. `…a1b2`."""
    if len(secret) <= visible * 2:  # too short to reveal anything safely
        return "…"
    return "…" + secret[-visible:]
