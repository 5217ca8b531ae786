from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from athos_identity.connectors.models import ConnectorState
from athos_identity.kit.regions import RegionCode

Region = Field(
    default=None,
    description="ISO 3166-1 alpha-2 country of the store (phones without a country code).",
)


def _printable_name(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise ValueError("the name must not be blank")
    if not value.isprintable():
        raise ValueError("the name must not contain control characters")
    return value


class StorePlatform(StrEnum):
    """Platforms a merchant connects a store of (the `api` connector is made on first ingest)."""

    shopify = "shopify"
    bigcommerce = "bigcommerce"


class ConnectorCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    platform: StorePlatform
    name: str = Field(min_length=1, max_length=200)
    store: str | None = Field(
        default=None,
        max_length=255,
        description="Shopify: the shop's myshopify.com domain. BigCommerce: the store hash "
        "(may also come later with the credentials).",
    )
    store_country: RegionCode | None = Region

    _name = field_validator("name")(_printable_name)


class ConnectorUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    store: str | None = Field(
        default=None,
        max_length=255,
        description="Only while the connector has no credentials (state not_granted).",
    )
    store_country: RegionCode | None = Region

    _name = field_validator("name")(_printable_name)


class ConnectorOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    platform: str
    name: str
    store: str | None
    state: ConnectorState
    scopes: list[str]
    store_country: str | None
    last_error: str | None
    warnings: list[str]
    credential_hint: str | None = Field(
        default=None, description="The last 4 characters of the stored token, e.g. `…a1b2`."
    )
    created_at: datetime
    updated_at: datetime


# --- BigCommerce ----------------------------------------------------------------------------


class BigCommerceCredentialsUpdate(BaseModel):
    """What the merchant pastes from BigCommerce's "API account created" dialog."""

    model_config = ConfigDict(extra="forbid")

    access_token: SecretStr = Field(
        description="The API account's Access Token. Stored encrypted; never shown again."
    )
    api_path: str | None = Field(
        default=None,
        max_length=500,
        description="The API Path exactly as BigCommerce shows it, e.g. "
        "https://api.bigcommerce.com/stores/abcde/v3/ (trailing slash or not).",
    )
    store_hash: str | None = Field(
        default=None, max_length=100, description="The store hash, instead of api_path."
    )


class BigCommerceCredentialsOut(BaseModel):
    connector: ConnectorOut
    scopes: list[str] = Field(description="Read permissions the token was found to have.")
    missing_optional_permissions: list[str] = Field(
        description='Optional permissions the API account lacks, e.g. "Products: Read-only".'
    )
    warnings: list[str]
    webhooks_registered: bool
    replaced_previous_token: bool
