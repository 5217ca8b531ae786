from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated, NotRequired

from pydantic import BaseModel, ConfigDict, Field, with_config
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from athos_identity.kit.regions import RegionCode
from athos_identity.kit.text import NO_NUL

MAX_INGEST_RECORDS = 10_000
MAX_LOOKUP_IDENTIFIERS = 1_000
MAX_IDENTIFIERS_PER_RECORD = 50
MAX_VALUE_LENGTH = 1024

Region = Field(
    default=None,
    description="ISO 3166-1 alpha-2 region for phones written without a country code.",
)


class IdentifierType(StrEnum):
    email = "email"
    phone = "phone"
    email_sha256 = "email_sha256"
    phone_sha256 = "phone_sha256"


# A typed dict, not a model: a look-up validates a thousand, and building model instances
# was half of that (bench/lookup.py).
@with_config(ConfigDict(extra="forbid"))
class IdentifierIn(TypedDict):
    """One e-mail or phone, raw or pre-hashed."""

    type: IdentifierType
    value: Annotated[
        str,
        Field(
            max_length=MAX_VALUE_LENGTH,
            description="A raw e-mail or phone, or the SHA-256 of its normalized form "
            "(64 hex or 44 base64 characters).",
        ),
    ]
    region: NotRequired[Annotated[RegionCode | None, Region]]


class LookupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    identifiers: list[IdentifierIn] = Field(min_length=1, max_length=MAX_LOOKUP_IDENTIFIERS)


class CustomerRef(BaseModel):
    connector_id: uuid.UUID
    customer_id: str


class LookupResult(BaseModel):
    matched: bool
    customers: list[CustomerRef]


class LookupOut(BaseModel):
    results: list[LookupResult] = Field(description="One result per identifier, in request order.")


class RecordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: str = Field(min_length=1, max_length=255, pattern=NO_NUL)
    emails: list[str] = Field(default_factory=list, max_length=MAX_IDENTIFIERS_PER_RECORD)
    phones: list[str] = Field(default_factory=list, max_length=MAX_IDENTIFIERS_PER_RECORD)
    default_region: RegionCode | None = Region


class RecordsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: list[RecordIn] = Field(min_length=1, max_length=MAX_INGEST_RECORDS)


class ItemError(BaseModel):
    index: int = Field(description="Position of the record (or identifier) in the request.")
    field: str
    reason: str


class IngestOut(BaseModel):
    records: int = Field(description="Records received.")
    identifiers_stored: int = Field(description="Valid identifiers now linked to their customer.")
    links_added: int = Field(description="Links that did not exist before this request.")
    links_removed: int = Field(description="Links dropped because a record no longer lists them.")
    skipped: int = Field(description="Invalid identifiers, skipped; see `errors`.")
    errors: list[ItemError]


class CustomerSelector(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: str = Field(min_length=1, max_length=255, pattern=NO_NUL)
    connector_id: uuid.UUID | None = Field(
        default=None, description="Only this connector's customer; every connector when omitted."
    )


class EraseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    identifiers: list[IdentifierIn] = Field(default_factory=list, max_length=MAX_LOOKUP_IDENTIFIERS)
    customers: list[CustomerSelector] = Field(
        default_factory=list, max_length=MAX_LOOKUP_IDENTIFIERS
    )


class EraseOut(BaseModel):
    links_removed: int = Field(description="Identifier-to-customer links deleted.")
    orders_scrubbed: int = Field(description="Orders whose hashed e-mail/phone were removed.")
