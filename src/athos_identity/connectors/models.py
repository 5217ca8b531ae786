from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import DateTime, ForeignKeyConstraint, String, Text, func
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
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
