from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from athos_identity.kit.regions import RegionCode
from athos_identity.kit.text import NO_NUL


class Scope(StrEnum):
    admin = "admin"  # connectors, keys, syncs, erasure of its own tenant
    lookup = "lookup"  # identity look-ups only
    operator = "operator"  # creates tenants; reads no tenant data


# Scopes a tenant's admin may grant through the API; operator keys come from the CLI only.
GRANTABLE_SCOPES = frozenset({Scope.admin, Scope.lookup})


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    default_region: RegionCode | None = Field(
        default=None,
        description="ISO 3166-1 alpha-2 region for phone numbers written without a country code.",
    )


class TenantOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(validation_alias="tenant_id")
    name: str
    default_region: str | None
    created_at: datetime


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scopes: list[Scope] = Field(min_length=1, max_length=3)
    name: str = Field(default="", max_length=200, pattern=NO_NUL)


class KeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    scopes: list[Scope]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="The API key itself. Shown once: only its SHA-256 is kept.")

    @classmethod
    def of(cls, key: object, token: str) -> KeyCreated:
        return cls(**KeyOut.model_validate(key).model_dump(), key=token)


class TenantCreated(BaseModel):
    tenant: TenantOut
    admin_key: KeyCreated
