"""Connectors: the rules of their life cycle and credentials. Never commits.

State machine, the same for every platform:

    not_granted --(token saved / grant completed)--> granted
    granted --(the platform answers 401 / invalid_grant)--> needs_reauthorization
    needs_reauthorization --(new token / new grant)--> granted
    any --(credentials deleted / app uninstalled)--> revoked  (data purged)
    revoked --(new token / new grant)--> granted

Pull jobs run only for `granted` connectors (`require_usable`).
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from athos_identity.audit import service as audit
from athos_identity.connectors import repository
from athos_identity.connectors.models import (
    Connector,
    ConnectorCredential,
    ConnectorState,
    CredentialKind,
    Platform,
)
from athos_identity.connectors.schemas import ConnectorCreate, ConnectorOut, ConnectorUpdate
from athos_identity.kit import crypto
from athos_identity.kit.errors import AppError, Conflict, InvalidInput, NotFound

log = logging.getLogger(__name__)

SHOPIFY_SHOP = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")
BIGCOMMERCE_STORE_HASH = re.compile(r"^[a-z0-9]{1,32}$")
MAX_ERROR_LENGTH = 500


class ConnectorNotUsable(AppError):
    """The connector has no working credential (not granted, revoked, or needs a new token)."""

    status, title, slug = 409, "Connector not usable", "connector-not-usable"


def invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(
        f"{field}: {message}", errors=[{"field": f"body.{field}", "message": message}]
    )


# --- stores ---------------------------------------------------------------------------------


def normalize_shop_domain(value: str) -> str:
    """`Demo-Shop.myshopify.com`, with or without https:// and a trailing slash."""
    shop = value.strip().lower()
    for prefix in ("https://", "http://"):
        shop = shop.removeprefix(prefix)
    shop = shop.rstrip("/")
    if not SHOPIFY_SHOP.match(shop):
        raise invalid(
            "store",
            "a Shopify store is its myshopify.com domain, e.g. my-shop.myshopify.com",
        )
    return shop


def validate_store_hash(value: str, field: str = "store") -> str:
    store_hash = value.strip()
    if not BIGCOMMERCE_STORE_HASH.match(store_hash):
        raise invalid(
            field,
            "a BigCommerce store hash is 1 to 32 lowercase letters and digits, "
            "as in https://api.bigcommerce.com/stores/{store_hash}/v3/",
        )
    return store_hash


def normalize_store(platform: str, value: str) -> str:
    if platform == Platform.shopify:
        return normalize_shop_domain(value)
    if platform == Platform.bigcommerce:
        return validate_store_hash(value)
    raise invalid("store", f"{platform} connectors have no store")


# --- views ----------------------------------------------------------------------------------


async def to_out(session: AsyncSession, connector: Connector) -> ConnectorOut:
    hints = await repository.credential_hints(session, connector.tenant_id, [connector.id])
    return _out(connector, hints.get(connector.id))


def _out(connector: Connector, hint: str | None) -> ConnectorOut:
    out = ConnectorOut.model_validate(connector)
    out.credential_hint = hint
    return out


# --- CRUD -----------------------------------------------------------------------------------


async def get_connector(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    connector_id: uuid.UUID,
    *,
    platform: Platform | None = None,
    for_update: bool = False,
) -> Connector:
    """The tenant's connector, or 404 (another tenant's id is 404 too)."""
    connector = await repository.get_connector(
        session, tenant_id, connector_id, for_update=for_update
    )
    if connector is None:
        raise NotFound("No connector with this id.")
    if platform is not None and connector.platform != platform:
        raise Conflict(f"This connector is a {connector.platform} connector, not {platform}.")
    return connector


async def _ensure_store_free(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    platform: str,
    store: str | None,
    connector_id: uuid.UUID | None = None,
) -> None:
    if store is None:
        return
    existing = await repository.find_by_store(session, tenant_id, platform, store)
    if existing is not None and existing.id != connector_id:
        raise Conflict(
            f"A {platform} connector for store {store} already exists.",
            connector_id=str(existing.id),
        )


async def _flush_unique(session: AsyncSession, platform: str, store: str | None) -> None:
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as error:
        detail = (
            f"A {platform} connector for store {store} already exists."
            if store
            else f"A {platform} connector without a store already exists: "
            "finish setting it up (or give this one its store) first."
        )
        raise Conflict(detail) from error


async def create_connector(
    session: AsyncSession, tenant_id: uuid.UUID, body: ConnectorCreate
) -> ConnectorOut:
    platform = Platform(body.platform.value)
    store = normalize_store(platform, body.store) if body.store is not None else None
    await _ensure_store_free(session, tenant_id, platform, store)
    connector = Connector(
        tenant_id=tenant_id,
        id=uuid.uuid4(),
        platform=platform.value,
        name=body.name.strip() or body.name,
        store=store,
        state=ConnectorState.not_granted.value,
        scopes=[],
        warnings=[],
        store_country=body.store_country,
    )
    session.add(connector)
    await _flush_unique(session, platform, store)
    await audit.record(session, tenant_id, "connector.create", connector.id)
    await session.refresh(connector)
    return _out(connector, None)


async def list_connectors(session: AsyncSession, tenant_id: uuid.UUID) -> list[ConnectorOut]:
    connectors = await repository.list_connectors(session, tenant_id)
    hints = await repository.credential_hints(session, tenant_id)
    return [_out(c, hints.get(c.id)) for c in connectors]


async def read_connector(
    session: AsyncSession, tenant_id: uuid.UUID, connector_id: uuid.UUID
) -> ConnectorOut:
    return await to_out(session, await get_connector(session, tenant_id, connector_id))


async def update_connector(
    session: AsyncSession, tenant_id: uuid.UUID, connector_id: uuid.UUID, body: ConnectorUpdate
) -> ConnectorOut:
    connector = await get_connector(session, tenant_id, connector_id, for_update=True)
    changes = body.model_dump(exclude_unset=True)
    if changes.get("name") is not None:
        connector.name = changes["name"].strip() or changes["name"]
    if "store_country" in changes:
        connector.store_country = changes["store_country"]
    if changes.get("store") is not None:
        store = normalize_store(connector.platform, changes["store"])
        if store != connector.store:
            if connector.state != ConnectorState.not_granted:
                raise Conflict(
                    "The store of a connector cannot change once it was granted access: "
                    "create another connector for the other store."
                )
            await _ensure_store_free(session, tenant_id, connector.platform, store, connector.id)
            connector.store = store
    await _flush_unique(session, connector.platform, connector.store)
    await repository.touch(session, connector)
    await audit.record(session, tenant_id, "connector.update", connector.id, fields=len(changes))
    return await to_out(session, connector)


async def delete_connector(
    session: AsyncSession, tenant_id: uuid.UUID, connector_id: uuid.UUID
) -> None:
    """Delete a connector and, through foreign keys, all of its data."""
    connector = await get_connector(session, tenant_id, connector_id, for_update=True)
    if connector.platform == Platform.bigcommerce:
        from athos_identity.connectors.bigcommerce import service as bigcommerce

        await bigcommerce.unregister_webhooks_quietly(session, connector)
    await repository.delete_connector(session, connector)
    await audit.record(session, tenant_id, "connector.delete", connector_id)
    log.info("connector %s deleted with its data", connector.id)


# --- state ----------------------------------------------------------------------------------


def short_reason(reason: str) -> str:
    return reason if len(reason) <= MAX_ERROR_LENGTH else reason[: MAX_ERROR_LENGTH - 1] + "…"


async def mark_granted(
    session: AsyncSession, connector: Connector, scopes: list[str], warnings: list[str]
) -> None:
    connector.state = ConnectorState.granted.value
    connector.scopes = sorted(set(scopes))
    connector.warnings = list(warnings)
    connector.last_error = None
    await repository.touch(session, connector)


async def mark_needs_reauthorization(
    session: AsyncSession, tenant_id: uuid.UUID, connector_id: uuid.UUID, reason: str
) -> Connector:
    """The platform refused the stored credential: stop using it until the merchant acts.

    The caller must commit this even though its own work failed (a job wrapper does it in
    a fresh transaction, see `connectors.bigcommerce.service.record_rejection`)."""
    connector = await get_connector(session, tenant_id, connector_id, for_update=True)
    if connector.state in (ConnectorState.granted, ConnectorState.needs_reauthorization):
        connector.state = ConnectorState.needs_reauthorization.value
        connector.last_error = short_reason(reason)
        await repository.touch(session, connector)
        log.warning("connector %s needs re-authorization", connector.id)
    return connector


def require_usable(connector: Connector) -> None:
    if connector.state != ConnectorState.granted:
        reason = {
            ConnectorState.not_granted: "has no credentials yet",
            ConnectorState.needs_reauthorization: "needs new credentials",
            ConnectorState.revoked: "was revoked",
        }.get(ConnectorState(connector.state), connector.state)
        raise ConnectorNotUsable(f"The connector {reason}.", state=connector.state)


async def revoke(session: AsyncSession, connector: Connector, reason: str) -> dict[str, int]:
    """Credentials gone: delete them and everything pulled through the connector."""
    purged = await repository.purge_connector_data(session, connector.tenant_id, connector.id)
    connector.webhook_secret_hash = None
    connector.state = ConnectorState.revoked.value
    connector.scopes = []
    connector.warnings = []
    connector.last_error = short_reason(reason)
    await repository.touch(session, connector)
    log.info("connector %s revoked; rows purged: %s", connector.id, purged)
    return purged


# --- credentials ----------------------------------------------------------------------------


async def store_credential(
    session: AsyncSession,
    connector: Connector,
    kind: CredentialKind,
    secret: str,
    *,
    expires_at: datetime | None = None,
) -> str:
    """Encrypt and save (insert or replace atomically) a secret; returns its masked hint."""
    ciphertext = crypto.encrypt_credential(
        secret, tenant_id=connector.tenant_id, connector_id=connector.id, purpose=kind.value
    )
    hint = crypto.mask(secret)
    await repository.upsert_credential(
        session,
        ConnectorCredential(
            tenant_id=connector.tenant_id,
            connector_id=connector.id,
            kind=kind.value,
            ciphertext=ciphertext,
            key_version=crypto.key_version_of(ciphertext),
            hint=hint,
            expires_at=expires_at,
        ),
    )
    return hint


async def read_credential(
    session: AsyncSession, connector: Connector, kind: CredentialKind
) -> str | None:
    """The decrypted secret, or None when there is none."""
    row = await repository.get_credential(session, connector.tenant_id, connector.id, kind.value)
    if row is None:
        return None
    return crypto.decrypt_credential(
        row.ciphertext, tenant_id=row.tenant_id, connector_id=row.connector_id, purpose=row.kind
    )


async def read_credential_quietly(
    session: AsyncSession, connector: Connector, kind: CredentialKind
) -> str | None:
    """Like `read_credential`, but None when the stored one cannot be decrypted."""
    try:
        return await read_credential(session, connector, kind)
    except crypto.CredentialDecryptionError:
        log.warning("connector %s: stored %s unreadable; ignored", connector.id, kind.value)
        return None


async def reencrypt_credentials(session: AsyncSession, tenant_id: uuid.UUID) -> int:
    """Rewrite the tenant's credentials made with an older key version (key rotation: set
    ATHOS_CREDENTIALS_KEY_VERSION to a new number, then run this per tenant). Returns how
    many were rewritten; unreadable ones are left as they are and logged."""
    current = crypto.current_key_version()
    rewritten = 0
    for row in await repository.credentials_not_at_version(session, tenant_id, current):
        try:
            secret = crypto.decrypt_credential(
                row.ciphertext,
                tenant_id=row.tenant_id,
                connector_id=row.connector_id,
                purpose=row.kind,
            )
        except crypto.CredentialDecryptionError:
            log.warning("connector %s: stored %s unreadable; not re-encrypted",
                        row.connector_id, row.kind)  # fmt: skip
            continue
        row.ciphertext = crypto.encrypt_credential(
            secret, tenant_id=row.tenant_id, connector_id=row.connector_id, purpose=row.kind
        )
        row.key_version = current
        rewritten += 1
    await session.flush()
    return rewritten
