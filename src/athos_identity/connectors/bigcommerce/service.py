"""BigCommerce connectors: token paste, validation by probes, atomic swap, hooks. Never commits.

A merchant creates a store-level API account, copies its Access Token and pastes it with the
store's API path. Before anything is stored the token is checked (`GET /v3/hooks` needs no
scope: 401 = bad token, or a token of another store) and each permission is probed with a
one-item read (403 = missing). Customers and Orders are required.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from athos_identity.audit import service as audit
from athos_identity.connectors import repository
from athos_identity.connectors import service as connectors
from athos_identity.connectors.bigcommerce.client import (
    BigCommerceClient,
    BigCommerceError,
    BigCommerceUnavailable,
    CredentialRejected,
    StoreNotFound,
)
from athos_identity.connectors.models import Connector, ConnectorState, CredentialKind, Platform
from athos_identity.connectors.schemas import (
    BigCommerceCredentialsOut,
    BigCommerceCredentialsUpdate,
)
from athos_identity.kit.errors import Conflict, InvalidInput
from athos_identity.settings import get_settings

log = logging.getLogger(__name__)

API_HOST = "api.bigcommerce.com"
MAX_TOKEN_LENGTH = 512
KIND = CredentialKind.bigcommerce_token


@dataclass(frozen=True)
class Permission:
    scope: str  # what connectors.scopes records
    label: str  # as BigCommerce's API account form names it
    probe: str  # a one-item read that needs it
    required: bool

    @property
    def instruction(self) -> str:
        return f"{self.label}: Read-only"


PERMISSIONS = (
    Permission("customers", "Customers", "/v3/customers", required=True),
    Permission("orders", "Orders", "/v2/orders", required=True),
    Permission("products", "Products", "/v3/catalog/products", required=False),
    Permission("content", "Content", "/v2/pages", required=False),
    Permission("themes", "Themes", "/v3/themes", required=False),
)

WEBHOOK_SCOPES = ("store/customer/*", "store/order/*")
WEBHOOK_SECRET_HEADER = "X-Athos-Webhook-Secret"  # noqa: S105 (a header name)
WEBHOOK_SECRET_PREFIX = "whs_"  # noqa: S105 (a prefix)
_API_PATH = re.compile(r"^/stores/([^/]*)/v[23]/?$")


# --- input ----------------------------------------------------------------------------------


def clean_token(token: str) -> str:
    """The pasted token without surrounding whitespace; 422 for anything else suspicious."""
    value = token.strip()
    if not value:
        raise connectors.invalid(
            "access_token",
            "the access token is empty: paste the Access Token BigCommerce showed when the "
            "API account was created",
        )
    if any(ch.isspace() for ch in value):
        raise connectors.invalid(
            "access_token",
            "the access token contains spaces or line breaks: copy it again in one piece",
        )
    if not value.isascii() or not value.isprintable():
        raise connectors.invalid(
            "access_token", "the access token may contain only letters, digits and symbols"
        )
    if len(value) > MAX_TOKEN_LENGTH:
        raise connectors.invalid("access_token", "the access token is too long")
    return value


def _allowed_api_prefixes() -> list[tuple[str, str]]:
    """(host, path prefix) pairs an API path may name: BigCommerce's, and the configured base
    (the sandbox prints API paths under its own address)."""
    allowed = [(API_HOST, "")]
    configured = urlsplit(get_settings().bigcommerce_base_url)
    if configured.netloc and configured.netloc.lower() != API_HOST:
        allowed.append((configured.netloc.lower(), configured.path.rstrip("/")))
    return allowed


def store_hash_from_api_path(api_path: str) -> str:
    """`https://api.bigcommerce.com/stores/abcde/v3/` (slash or not, v2 or v3) -> `abcde`."""
    raw = api_path.strip()
    if "://" not in raw:
        raw = "https://" + raw
    problem = (
        "the API path must be the one BigCommerce shows for the API account, "
        f"e.g. https://{API_HOST}/stores/abc123/v3/"
    )
    try:
        parts = urlsplit(raw)
        host = parts.netloc.lower()
        hostname = parts.hostname
    except ValueError:
        raise connectors.invalid("api_path", problem) from None
    for allowed_host, prefix in _allowed_api_prefixes():
        if host != allowed_host:
            continue
        if allowed_host == API_HOST and parts.scheme != "https":
            break
        if parts.query or parts.fragment or not parts.path.startswith(prefix + "/stores/"):
            raise connectors.invalid("api_path", problem)
        match = _API_PATH.match(parts.path[len(prefix) :])
        if match is None:
            raise connectors.invalid("api_path", problem)
        return connectors.validate_store_hash(match.group(1), field="api_path")
    raise connectors.invalid(
        "api_path", f"the API path must be on {API_HOST}, not on {hostname or 'this host'}"
    )


def resolve_store_hash(connector: Connector, body: BigCommerceCredentialsUpdate) -> str:
    from_path = store_hash_from_api_path(body.api_path) if body.api_path is not None else None
    given = (
        connectors.validate_store_hash(body.store_hash, field="store_hash")
        if body.store_hash is not None
        else None
    )
    if from_path and given and from_path != given:
        raise connectors.invalid(
            "store_hash", f"the store hash {given} differs from the API path's {from_path}"
        )
    store_hash = from_path or given or connector.store
    if store_hash is None:
        raise connectors.invalid(
            "api_path", "give the API path BigCommerce shows (or the store hash)"
        )
    if connector.store is not None and store_hash != connector.store:
        field_name = "api_path" if from_path else "store_hash"
        raise connectors.invalid(
            field_name,
            f"this connector is for store {connector.store}, the credentials are for store "
            f"{store_hash}: create a connector for that store",
        )
    return store_hash


# --- validation -----------------------------------------------------------------------------


@dataclass
class Validation:
    store_hash: str
    scopes: list[str] = field(default_factory=list)
    missing_required: list[Permission] = field(default_factory=list)
    missing_optional: list[Permission] = field(default_factory=list)


async def probe_permissions(client: BigCommerceClient) -> Validation:
    """Check the token, then each permission; raises on a rejected token or unknown store."""
    await client.check_token()
    result = Validation(client.store_hash)
    for permission in PERMISSIONS:
        if await client.has_read_access(permission.probe):
            result.scopes.append(permission.scope)
        elif permission.required:
            result.missing_required.append(permission)
        else:
            result.missing_optional.append(permission)
    return result


def _missing_required_error(missing: list[Permission]) -> InvalidInput:
    instructions = [p.instruction for p in missing]
    return InvalidInput(
        "The BigCommerce API account lacks permissions Athos needs. In BigCommerce "
        "(Settings > API > Store-level API accounts), create a new API account with "
        + ", ".join(instructions)
        + " and paste its access token. Nothing was saved.",
        errors=[
            {"field": "body.access_token", "message": f"missing permission {i}"}
            for i in instructions
        ],
        missing_permissions=instructions,
    )


def _rejected_error(store_hash: str) -> InvalidInput:
    return InvalidInput(
        f"BigCommerce did not accept this access token for store {store_hash}: copy the whole "
        "Access Token of an API account of this store (a token of another store is refused). "
        "Nothing was saved.",
        errors=[{"field": "body.access_token", "message": "token rejected by BigCommerce"}],
    )


def _store_not_found_error(store_hash: str) -> InvalidInput:
    return InvalidInput(
        f"BigCommerce has no store with hash {store_hash}: check the API path. Nothing was saved.",
        errors=[{"field": "body.api_path", "message": "unknown store"}],
    )


def new_client(store_hash: str, token: str) -> BigCommerceClient:
    return BigCommerceClient(store_hash, token)


# --- credentials ----------------------------------------------------------------------------


async def put_credentials(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    connector_id: uuid.UUID,
    body: BigCommerceCredentialsUpdate,
) -> BigCommerceCredentialsOut:
    """Validate a pasted token, then save it in place of the previous one (atomically).

    Until the request's transaction commits, pulls keep reading the previous token; after,
    they read the new one. Data and sync state are kept."""
    connector = await connectors.get_connector(
        session, tenant_id, connector_id, platform=Platform.bigcommerce
    )
    token = clean_token(body.access_token.get_secret_value())
    store_hash = resolve_store_hash(connector, body)
    if connector.store is None:
        existing = await repository.find_by_store(
            session, tenant_id, Platform.bigcommerce, store_hash
        )
        if existing is not None:
            raise Conflict(
                f"A bigcommerce connector for store {store_hash} already exists.",
                connector_id=str(existing.id),
            )

    async with new_client(store_hash, token) as client:
        try:
            validation = await probe_permissions(client)
        except CredentialRejected:
            raise _rejected_error(store_hash) from None
        except StoreNotFound:
            raise _store_not_found_error(store_hash) from None
        if validation.missing_required:
            raise _missing_required_error(validation.missing_required)

        # Validated: now lock the connector and swap (one statement, one transaction).
        connector = await connectors.get_connector(
            session, tenant_id, connector_id, platform=Platform.bigcommerce, for_update=True
        )
        previous = await connectors.read_credential_quietly(session, connector, KIND)
        await connectors.store_credential(session, connector, KIND, token)
        connector.store = store_hash
        warnings = [
            f"Optional permission missing: {p.instruction} (needed for product "
            "recommendations and content; create a new API account to add it)"
            for p in validation.missing_optional
        ]
        registered, hook_warning = await register_webhooks(
            session, connector, client, previous_token=previous
        )
        if hook_warning:
            warnings.append(hook_warning)
        await connectors.mark_granted(session, connector, validation.scopes, warnings)
        await audit.record(
            session,
            tenant_id,
            "bigcommerce.credentials.put",
            connector_id,
            replaced=previous is not None,
            scopes=len(validation.scopes),
        )

    log.info(
        "bigcommerce connector %s: token %s (scopes %s)",
        connector.id,
        "replaced" if previous else "saved",
        ",".join(validation.scopes),
    )
    return BigCommerceCredentialsOut(
        connector=await connectors.to_out(session, connector),
        scopes=validation.scopes,
        missing_optional_permissions=[p.instruction for p in validation.missing_optional],
        warnings=warnings,
        webhooks_registered=registered,
        replaced_previous_token=previous is not None,
    )


async def delete_credentials(
    session: AsyncSession, tenant_id: uuid.UUID, connector_id: uuid.UUID
) -> Connector:
    """The merchant deleted the API account: drop the token, stop pulls, purge the data."""
    connector = await connectors.get_connector(
        session, tenant_id, connector_id, platform=Platform.bigcommerce, for_update=True
    )
    await unregister_webhooks_quietly(session, connector)
    await connectors.revoke(session, connector, "The BigCommerce credentials were deleted.")
    await audit.record(session, tenant_id, "bigcommerce.credentials.delete", connector_id)
    return connector


async def check_credentials(
    session: AsyncSession, tenant_id: uuid.UUID, connector_id: uuid.UUID
) -> Connector:
    """Re-check the stored token now ("Test connection"); a 401 marks needs_reauthorization."""
    connector = await connectors.get_connector(
        session, tenant_id, connector_id, platform=Platform.bigcommerce
    )
    token = await connectors.read_credential(session, connector, KIND)
    if token is None or connector.store is None:
        connectors.require_usable(connector)  # raises: no credentials
        raise AssertionError("unreachable")
    async with new_client(connector.store, token) as client:
        try:
            validation = await probe_permissions(client)
        except CredentialRejected as rejected:
            return await connectors.mark_needs_reauthorization(
                session, tenant_id, connector_id, rejected.detail
            )
    if validation.missing_required:
        missing = ", ".join(p.instruction for p in validation.missing_required)
        return await connectors.mark_needs_reauthorization(
            session, tenant_id, connector_id, f"The API account lacks {missing}."
        )
    if connector.state != ConnectorState.granted:
        connector.state = ConnectorState.granted.value
    connector.scopes = validation.scopes
    connector.last_error = None
    await repository.touch(session, connector)
    return connector


async def open_client(
    session: AsyncSession, tenant_id: uuid.UUID, connector_id: uuid.UUID
) -> BigCommerceClient:
    """A client with the connector's decrypted token (for pull jobs); 409 if not granted.

    On `CredentialRejected` from it, call `connectors.service.mark_needs_reauthorization` in a
    transaction that commits (see `bigcommerce.access.connector_client`)."""
    connector = await connectors.get_connector(
        session, tenant_id, connector_id, platform=Platform.bigcommerce
    )
    connectors.require_usable(connector)
    token = await connectors.read_credential(session, connector, KIND)
    if token is None or connector.store is None:
        raise connectors.ConnectorNotUsable("The connector has no stored token.")
    return new_client(connector.store, token)


# --- webhooks -------------------------------------------------------------------------------


def webhook_destination(connector_id: uuid.UUID) -> str:
    return f"{get_settings().public_url.rstrip('/')}/v1/webhooks/bigcommerce/{connector_id}"


def new_webhook_secret(tenant_id: uuid.UUID) -> str:
    # The tenant travels in the secret (as in API keys) so the receiver can scope its
    # transaction before it looks the connector up.
    return f"{WEBHOOK_SECRET_PREFIX}{tenant_id.hex}_{secrets.token_urlsafe(32)}"


def hash_webhook_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


async def _delete_our_hooks(client: BigCommerceClient, destination: str) -> None:
    for hook in await client.list_hooks():
        if hook.get("destination") == destination and hook.get("id") is not None:
            await client.delete_hook(int(hook["id"]))


async def register_webhooks(
    session: AsyncSession,
    connector: Connector,
    client: BigCommerceClient,
    *,
    previous_token: str | None = None,
) -> tuple[bool, str | None]:
    """(Re-)register the customer and order hooks with a fresh secret; returns (done, warning).

    Hooks made with a previous token are removed first (best effort: that API account may be
    deleted already), so only the new secret is sent from now on."""
    destination = webhook_destination(connector.id)
    if previous_token is not None and connector.store is not None:
        try:
            async with new_client(connector.store, previous_token) as old:
                await _delete_our_hooks(old, destination)
        except BigCommerceError as error:
            log.info("old hooks of connector %s not removed: %s", connector.id, error.title)
    secret = new_webhook_secret(connector.tenant_id)
    try:
        await _delete_our_hooks(client, destination)
        for scope in WEBHOOK_SCOPES:
            await client.create_hook(scope, destination, {WEBHOOK_SECRET_HEADER: secret})
    except (BigCommerceError, BigCommerceUnavailable) as error:
        log.warning("hooks of connector %s not registered: %s", connector.id, error.title)
        connector.webhook_secret_hash = hash_webhook_secret(secret)
        return False, (
            "BigCommerce webhooks could not be registered "
            f"({error.title}); changes will arrive with the periodic syncs only."
        )
    connector.webhook_secret_hash = hash_webhook_secret(secret)
    return True, None


async def unregister_webhooks_quietly(session: AsyncSession, connector: Connector) -> None:
    """Remove our hooks from the store if the token still works; never fails."""
    try:
        token = await connectors.read_credential(session, connector, KIND)
    except Exception:  # an unreadable credential must not block a deletion
        token = None
    if token is None or connector.store is None:
        return
    try:
        async with new_client(connector.store, token) as client:
            await _delete_our_hooks(client, webhook_destination(connector.id))
    except BigCommerceError as error:
        log.info("hooks of connector %s not removed: %s", connector.id, error.title)
