"""From a normalized identifier to the key stored in the database (DESIGN.md §6).

    d   = SHA-256(normalized, UTF-8)                        32 bytes; what clients may pre-hash
    K_t = HKDF-SHA256(master, salt=None,
                      info=b"athos-identity/v{version}/" + str(tenant_id), length=32)
    key = HMAC-SHA256(K_t, d)                               32 bytes, stored with the version

Decisions:

- ``salt=None`` (RFC 5869: a zero-filled salt of hash length). The master secret is already a
  uniformly random key of at least 32 bytes, for which RFC 5869 §3.1 makes the salt optional;
  the per-tenant separation lives in ``info``. Nothing to store or rotate besides the master.
- The key version is part of ``info`` (``v1`` for version 1, exactly DESIGN.md's label), so a
  new version yields new keys even if an operator reused the master secret by mistake.
- ``tenant_id`` enters as ``str(uuid)``: lowercase, hyphenated, canonical.
- Derived keys are cached per (master, tenant, version); building a :class:`TenantHasher` on
  every request is cheap.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from enum import StrEnum
from functools import lru_cache
from typing import NamedTuple

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from athos_identity.identity.normalize import (
    InvalidIdentifier,
    normalize_email,
    normalize_phone,
)

__all__ = [
    "DIGEST_SIZE",
    "REASON_PREHASHED",
    "HashedIdentifier",
    "IdentifierKind",
    "InvalidIdentifier",
    "TenantHasher",
    "hash_email",
    "hash_phone",
    "hash_prehashed",
    "identifier_digest",
    "parse_prehashed",
]

DIGEST_SIZE = 32
MIN_MASTER_SECRET_SIZE = 32
REASON_PREHASHED = "expected 64 hex or 44 base64 characters of a SHA-256 digest"
REASON_NOT_UTF8 = "value cannot be encoded as UTF-8"
_INFO_PREFIX = "athos-identity/v"
_SHA256_BLOCK_SIZE = 64
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))

_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
_B64_DIGEST = re.compile(r"[A-Za-z0-9+/]{43}=")
_PREHASHED_EDGE = " \t\r\n"


class IdentifierKind(StrEnum):
    EMAIL = "email"
    PHONE = "phone"


class HashedIdentifier(NamedTuple):
    """What the link store keeps for one e-mail or phone: no PII, tenant-specific.

    A named tuple, not a frozen dataclass: a look-up builds a thousand, and a frozen
    dataclass's __init__ cost more than the HMAC."""

    kind: IdentifierKind
    key: bytes  # HMAC-SHA256(K_tenant, SHA-256(normalized)), 32 bytes
    key_version: int


def identifier_digest(normalized: str) -> bytes:
    """SHA-256 of the UTF-8 encoding of an already normalized identifier (32 bytes)."""
    try:
        data = normalized.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates; the message would quote part of the value
        raise InvalidIdentifier(REASON_NOT_UTF8) from None
    return hashlib.sha256(data).digest()


def parse_prehashed(value: str) -> bytes:
    """Decode a client-side SHA-256 digest: 64 hex characters (any case) or 44 characters of
    standard, padded, canonical base64. Surrounding ASCII whitespace is ignored. Anything else
    raises :class:`InvalidIdentifier` (``REASON_PREHASHED``)."""
    if not isinstance(value, str):
        raise InvalidIdentifier(REASON_PREHASHED)
    s = value.strip(_PREHASHED_EDGE)
    if len(s) == 64 and _HEX_DIGEST.fullmatch(s):
        return bytes.fromhex(s)
    if len(s) == 44 and _B64_DIGEST.fullmatch(s):
        digest = base64.b64decode(s, validate=True)
        # Reject non-canonical encodings (non-zero padding bits): a standard encoder never
        # produces them, so they betray a bug on the client's side.
        if base64.b64encode(digest).decode("ascii") == s:
            return digest
    raise InvalidIdentifier(REASON_PREHASHED)


@lru_cache(maxsize=65536)
def _derive_tenant_key(master_secret: bytes, tenant_id: uuid.UUID, version: int) -> bytes:
    info = f"{_INFO_PREFIX}{version}/{tenant_id}".encode("ascii")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info)
    return hkdf.derive(master_secret)


class TenantHasher:
    """Keys one tenant's identifiers: ``key_for(d) = HMAC-SHA256(K_tenant, d)``.

    ``master_secret`` is the identity master key of ``version`` (from settings, at least 32
    random bytes). Never logs or reprs key material.
    """

    __slots__ = ("_inner", "_key", "_outer", "tenant_id", "version")

    def __init__(self, master_secret: bytes, tenant_id: uuid.UUID, version: int = 1) -> None:
        if not isinstance(master_secret, bytes) or len(master_secret) < MIN_MASTER_SECRET_SIZE:
            raise ValueError(f"master_secret must be at least {MIN_MASTER_SECRET_SIZE} bytes")
        if not isinstance(tenant_id, uuid.UUID):
            raise TypeError("tenant_id must be a uuid.UUID")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError("version must be a positive integer")
        self._key = _derive_tenant_key(master_secret, tenant_id, version)
        # HMAC (RFC 2104) with its two padded-key states computed once, as the stdlib's
        # hmac module keeps them: copying two hashlib states per identifier cost half of
        # copying an hmac.HMAC (bench/lookup.py hashes a thousand per batch). Tested
        # against hmac.new.
        block = self._key.ljust(_SHA256_BLOCK_SIZE, b"\0")
        self._inner = hashlib.sha256(block.translate(_IPAD))
        self._outer = hashlib.sha256(block.translate(_OPAD))
        self.tenant_id = tenant_id
        self.version = version

    def __repr__(self) -> str:
        return f"TenantHasher(tenant_id={self.tenant_id}, version={self.version})"

    def key_for(self, digest: bytes) -> bytes:
        """HMAC-SHA256 of a 32-byte SHA-256 digest under this tenant's key."""
        if len(digest) != DIGEST_SIZE:
            raise ValueError(f"digest must be {DIGEST_SIZE} bytes")
        inner = self._inner.copy()
        inner.update(digest)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def hashed(self, kind: IdentifierKind, digest: bytes) -> HashedIdentifier:
        """The stored form of a digest of the given kind."""
        return HashedIdentifier(kind, self.key_for(digest), self.version)


def hash_email(raw: str, hasher: TenantHasher) -> HashedIdentifier:
    """Normalize, digest and key a raw e-mail. Raises :class:`InvalidIdentifier`."""
    return hasher.hashed(IdentifierKind.EMAIL, identifier_digest(normalize_email(raw)))


def hash_phone(raw: str, region: str | None, hasher: TenantHasher) -> HashedIdentifier:
    """Normalize (E.164, ``region`` for national numbers), digest and key a raw phone number.
    Raises :class:`InvalidIdentifier`."""
    return hasher.hashed(IdentifierKind.PHONE, identifier_digest(normalize_phone(raw, region)))


def hash_prehashed(kind: IdentifierKind, value: str, hasher: TenantHasher) -> HashedIdentifier:
    """Key a client's pre-hashed digest (hex or base64, see :func:`parse_prehashed`)."""
    return hasher.hashed(kind, parse_prehashed(value))
