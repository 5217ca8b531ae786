from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from athos_identity.connectors.schemas import ConnectorOut


class GrantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    history_days: int | None = Field(
        default=None,
        ge=1,
        le=36500,
        description="Days of order history the pulls should read; beyond 60 the grant also "
        "asks for read_all_orders.",
    )


class GrantOut(BaseModel):
    authorize_url: str = Field(description="Send the merchant's browser here (Shopify's approval).")
    scopes: list[str] = Field(description="Scopes the grant asks for.")
    expires_at: datetime = Field(description="The approval must come back before this.")


class ShopifyStatusOut(BaseModel):
    connector: ConnectorOut
    api_version: str
    access_token_expires_at: datetime | None
    refresh_token_expires_at: datetime | None
    webhook_url: str


class RevokeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uninstall: bool = Field(
        default=False,
        description="Uninstall the app from the store (appUninstall) instead of only giving "
        "back the customer-data scopes (appRevokeAccessScopes).",
    )


class RevokeOut(BaseModel):
    connector: ConnectorOut
    remote: str = Field(
        description="What happened at Shopify: scopes_revoked (optional scopes given back) "
        "| uninstalled (asked for, or the scopes were required ones, which Shopify gives back "
        "only with the app) | already_invalid (the token was dead already) | "
        "nothing_to_revoke | refused (Shopify said no; remove the app in its admin) | failed "
        "(unreachable; retried)."
    )
    remote_error: str | None = None
    retry_remote: bool = Field(
        description="True when Shopify could not be told: our copy is gone, but POST "
        "/revoke again (or remove the app in Shopify admin) to finish at Shopify."
    )
    revoked_scopes: list[str]
    purged: dict[str, int] = Field(description="Rows deleted per table.")


class ComplianceRequestOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    connector_id: uuid.UUID
    shop: str
    topic: str
    shopify_request_id: str | None
    customer_id: str | None
    order_ids: list[str] = Field(description="orders_requested or orders_to_redact, as sent.")
    result: dict[str, Any] = Field(
        description="Ids and counts only. A data request: customer_ids (those we hold it "
        "under, empty when none), hashed_emails, hashed_phones, identity_links, "
        "orders_of_customer, orders_requested_held, orders_held, "
        "orders_with_hashed_identifiers. A redaction: what was erased."
    )
    received_at: datetime
    completed_at: datetime | None = Field(
        description="When it was done (shop/redact is done by a job, moments later)."
    )
