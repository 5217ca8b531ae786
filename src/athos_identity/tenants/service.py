"""Tenants and API keys: the rules. Never commits; the caller's transaction does."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from athos_identity.audit import service as audit
from athos_identity.db import scope_to_tenant, tenant_transaction
from athos_identity.kit.errors import Forbidden, NotFound, Unauthorized
from athos_identity.settings import get_settings
from athos_identity.tenants import repository
from athos_identity.tenants.models import ApiKey, Tenant
from athos_identity.tenants.schemas import GRANTABLE_SCOPES, Scope

KEY_PREFIX = "athk_"
# athk_<tenant id, 32 hex>_<43 url-safe characters of 32 random bytes>
_KEY_FORMAT = re.compile(r"^athk_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class Caller:
    """Who is calling: the tenant and key an API key resolved to."""

    tenant_id: uuid.UUID
    key_id: uuid.UUID
    scopes: frozenset[Scope]
    default_region: str | None = None


class _VerifiedKeys:
    """Keys verified in the last few seconds, so look-ups need no authentication query.

    Revoking a key clears this process's cache at once; other processes notice within
    `auth_cache_seconds`.
    """

    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self._entries: dict[bytes, tuple[Caller, float]] = {}

    def get(self, key_hash: bytes) -> Caller | None:
        entry = self._entries.get(key_hash)
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def put(self, key_hash: bytes, caller: Caller) -> None:
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        self._entries[key_hash] = (caller, time.monotonic() + get_settings().auth_cache_seconds)

    def clear(self) -> None:
        self._entries.clear()


verified_keys = _VerifiedKeys()


def hash_key(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_key_token(tenant_id: uuid.UUID) -> str:
    # The tenant id travels in the key so authentication finds the tenant (its shard) at once.
    return f"{KEY_PREFIX}{tenant_id.hex}_{secrets.token_urlsafe(32)}"


def tenant_of_token(token: str) -> uuid.UUID | None:
    match = _KEY_FORMAT.match(token)
    return uuid.UUID(match.group(1)) if match else None


async def create_tenant(
    session: AsyncSession, name: str, default_region: str | None = None
) -> tuple[Tenant, ApiKey, str]:
    """A new tenant and its first admin key (returned once, with the key's row)."""
    tenant_id = uuid.uuid4()
    await scope_to_tenant(session, tenant_id)
    tenant = await repository.add_tenant(
        session, Tenant(tenant_id=tenant_id, name=name, default_region=default_region)
    )
    key, token = await create_key(session, tenant_id, [Scope.admin], name="first admin key")
    return tenant, key, token


async def create_key(
    session: AsyncSession, tenant_id: uuid.UUID, scopes: list[Scope], name: str = ""
) -> tuple[ApiKey, str]:
    if await repository.get_tenant(session, tenant_id) is None:
        raise NotFound("No tenant with this id.")
    token = new_key_token(tenant_id)
    key = ApiKey(
        tenant_id=tenant_id,
        id=uuid.uuid4(),
        name=name,
        key_hash=hash_key(token),
        scopes=sorted({str(s) for s in scopes}),
    )
    await audit.record(session, tenant_id, "key.create", key.id)
    return await repository.add_key(session, key), token


async def create_key_for_caller(
    session: AsyncSession, caller: Caller, scopes: list[Scope], name: str
) -> tuple[ApiKey, str]:
    not_grantable = sorted(set(scopes) - GRANTABLE_SCOPES)
    if not_grantable:
        raise Forbidden(
            f"Scope {', '.join(not_grantable)} cannot be granted through the API; "
            "operators create such keys with the command line."
        )
    return await create_key(session, caller.tenant_id, scopes, name)


async def list_keys(session: AsyncSession) -> list[ApiKey]:
    return await repository.list_keys(session)


async def revoke_key(session: AsyncSession, key_id: uuid.UUID) -> ApiKey:
    key = await repository.get_key(session, key_id)
    if key is None:
        raise NotFound("No API key with this id.")
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
        await session.flush()
        verified_keys.clear()
        await audit.record(session, key.tenant_id, "key.revoke", key.id)
    return key


async def authenticate(token: str | None) -> Caller:
    """Resolve an API key to its caller, or raise Unauthorized."""
    tenant_id = tenant_of_token(token) if token else None
    if tenant_id is None or token is None:
        raise Unauthorized("A valid API key is required (Authorization: Bearer athk_...).")
    key_hash = hash_key(token)
    caller = verified_keys.get(key_hash)
    if caller is None:
        caller = await _verify(tenant_id, key_hash)
        verified_keys.put(key_hash, caller)
    return caller


async def _verify(tenant_id: uuid.UUID, key_hash: bytes) -> Caller:
    async with tenant_transaction(tenant_id) as session:
        key = await repository.find_key_by_hash(session, key_hash)
        if key is None or key.revoked_at is not None:
            raise Unauthorized("The API key is unknown or revoked.")
        await repository.touch_key(session, key)
        tenant = await repository.get_tenant(session, tenant_id)
        return Caller(
            tenant_id=tenant_id,
            key_id=key.id,
            scopes=frozenset(Scope(s) for s in key.scopes),
            default_region=tenant.default_region if tenant else None,
        )
