from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class AuditAction(StrEnum):
    connector_create = "connector.create"
    connector_update = "connector.update"
    connector_delete = "connector.delete"
    shopify_grant = "shopify.grant"
    shopify_revoke = "shopify.revoke"
    bigcommerce_credentials_put = "bigcommerce.credentials.put"
    bigcommerce_credentials_delete = "bigcommerce.credentials.delete"
    key_create = "key.create"
    key_revoke = "key.revoke"
    identity_erase = "identity.erase"
    sync_start = "sync.start"
    sync_cancel = "sync.cancel"


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    at: datetime
    key_id: uuid.UUID | None = None
    action: str
    target_id: str | None = None
    request_id: str | None = None
    details: dict[str, int | bool]


class AuditPage(BaseModel):
    events: list[AuditEventOut]
    next_cursor: str | None = None
