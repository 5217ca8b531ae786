"""Receiving BigCommerce hooks: authenticate the per-connector secret, deduplicate, record.

BigCommerce payloads carry ids only (`{"scope": "store/customer/updated", "data": {"type":
"customer", "id": 42}, "hash": "...", "created_at": ..., "producer": "stores/abc"}`). The
handler records the event in `webhook_deliveries` and answers 200 at once; the job
`bigcommerce.apply_hooks` (connectors/bigcommerce/hooks.py) then fetches the customer or
order it names, stores it and sets `processed_at`.

Deduplication: BigCommerce's `hash` is the SHA-1 of the payload's `data` (the resource),
so it is the same for two successive updates of one customer; the delivery key is
`hash:created_at:scope`, which is the same for a retried delivery and differs for a later
event.
"""

from __future__ import annotations

import hmac
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from athos_identity.connectors import repository
from athos_identity.connectors.bigcommerce.service import (
    WEBHOOK_SECRET_PREFIX,
    hash_webhook_secret,
)
from athos_identity.connectors.models import ConnectorState, Platform, WebhookDelivery
from athos_identity.db import scope_to_tenant
from athos_identity.kit.errors import BadRequest, PayloadTooLarge, Unauthorized

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
TOPIC_PREFIXES = ("store/customer/", "store/order/")
_EMPTY_HASH = hash_webhook_secret("")


@dataclass(frozen=True)
class Received:
    status: str  # recorded | duplicate | ignored
    topic: str | None = None
    tenant_id: uuid.UUID | None = None


def tenant_of_secret(secret: str) -> uuid.UUID | None:
    if not secret.startswith(WEBHOOK_SECRET_PREFIX):
        return None
    tenant_hex, _, rest = secret[len(WEBHOOK_SECRET_PREFIX) :].partition("_")
    if not rest:
        return None
    try:
        return uuid.UUID(hex=tenant_hex)
    except ValueError:
        return None


def _unauthorized() -> Unauthorized:
    error = Unauthorized("The webhook secret is missing or wrong.")
    error.headers = None  # not a Bearer challenge
    return error


async def receive(
    session: AsyncSession, connector_id: uuid.UUID, secret: str | None, body: bytes
) -> Received:
    """Authenticate, then record the event once. 401 unless the secret matches in full."""
    tenant_id = tenant_of_secret(secret or "")
    presented = hash_webhook_secret(secret or "")
    connector = None
    if tenant_id is not None:
        await scope_to_tenant(session, tenant_id)
        connector = await repository.get_connector(session, tenant_id, connector_id)
    expected = (
        connector.webhook_secret_hash
        if connector is not None
        and connector.platform == Platform.bigcommerce
        and connector.webhook_secret_hash is not None
        else None
    )
    # Constant time, and the same work whether or not the connector exists.
    matches = hmac.compare_digest(presented, expected or _EMPTY_HASH)
    if connector is None or expected is None or not matches:
        raise _unauthorized()

    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge("The webhook body is larger than BigCommerce sends.")
    payload = _parse(body)
    topic = str(payload.get("scope") or "")
    if not topic.startswith(TOPIC_PREFIXES) or connector.state == ConnectorState.revoked:
        return Received("ignored", topic or None)
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    resource_id = data.get("id")
    delivery_key = f"{payload.get('hash') or ''}:{payload.get('created_at') or ''}:{topic}"
    if delivery_key.startswith(":"):
        raise BadRequest("The webhook payload has no hash.")
    recorded = await repository.record_delivery(
        session,
        WebhookDelivery(
            tenant_id=connector.tenant_id,
            connector_id=connector.id,
            delivery_key=delivery_key[:300],
            topic=topic[:100],
            resource_type=str(data.get("type"))[:50] if data.get("type") else None,
            resource_id=str(resource_id)[:100] if resource_id is not None else None,
        ),
    )
    log.info(
        "bigcommerce hook %s for connector %s: %s",
        topic, connector.id, "recorded" if recorded else "duplicate",
    )  # fmt: skip
    return Received("recorded" if recorded else "duplicate", topic, connector.tenant_id)


def _parse(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except ValueError:
        raise BadRequest("The webhook body is not JSON.") from None
    if not isinstance(payload, dict):
        raise BadRequest("The webhook body is not a JSON object.")
    return payload
