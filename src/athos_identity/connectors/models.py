from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import DateTime, ForeignKeyConstraint, LargeBinary, SmallInteger, String, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from athos_identity.kit.orm import Base, created_at_column, tenant_column


class Platform(StrEnum):
    shopify = "shopify"
    bigcommerce = "bigcommerce"
    api = "api"  # the generic ingest endpoint, for merchants on any other platform


class ConnectorState(StrEnum):
    not_granted = "not_granted"
    granted = "granted"
    needs_reauthorization = "needs_reauthorization"
    revoked = "revoked"


class Connector(Base):
    __tablename__ = "connectors"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.tenant_id"], ondelete="CASCADE"),
    )

    tenant_id: Mapped[uuid.UUID] = tenant_column()
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    platform: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text, default="")
    store: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(Text, default=ConnectorState.not_granted.value)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    store_country: Mapped[str | None] = mapped_column(String(2))
    last_error: Mapped[str | None] = mapped_column(Text)
    webhook_secret_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    warnings: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class CredentialKind(StrEnum):
    bigcommerce_token = "bigcommerce_token"  # noqa: S105 (a kind, not a secret)
    shopify_access = "shopify_access"
    shopify_refresh = "shopify_refresh"


class ConnectorCredential(Base):
    """One encrypted platform secret of a connector (kit.crypto; AAD = tenant, connector, kind)."""

    __tablename__ = "connector_credentials"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "connector_id"],
            ["connectors.tenant_id", "connectors.id"],
            ondelete="CASCADE",
        ),
    )

    tenant_id: Mapped[uuid.UUID] = tenant_column()
    connector_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    kind: Mapped[str] = mapped_column(Text, primary_key=True)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    key_version: Mapped[int] = mapped_column(SmallInteger)
    hint: Mapped[str] = mapped_column(Text, default="")
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()


class WebhookDelivery(Base):
    """A webhook received (ids only), kept to deduplicate and for the pull jobs to act on."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "connector_id"],
            ["connectors.tenant_id", "connectors.id"],
            ondelete="CASCADE",
        ),
    )

    tenant_id: Mapped[uuid.UUID] = tenant_column()
    connector_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    delivery_key: Mapped[str] = mapped_column(Text, primary_key=True)
    topic: Mapped[str] = mapped_column(Text)
    resource_type: Mapped[str | None] = mapped_column(Text)
    resource_id: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
