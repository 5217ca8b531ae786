"""ORM of the Shopify tables (migration 0004)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKeyConstraint, LargeBinary, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from athos_identity.kit.orm import Base, created_at_column, tenant_column


class ShopifyOAuthState(Base):
    """A Grant Access in progress: the SHA-256 of its single-use state token."""

    __tablename__ = "shopify_oauth_states"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "connector_id"],
            ["connectors.tenant_id", "connectors.id"],
            ondelete="CASCADE",
        ),
    )

    tenant_id: Mapped[uuid.UUID] = tenant_column()
    state_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    connector_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    shop: Mapped[str] = mapped_column(Text)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()


class ShopifyComplianceRequest(Base):
    """A privacy request Shopify sent and what was done (ids and counts, never PII)."""

    __tablename__ = "shopify_compliance_requests"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.tenant_id"], ondelete="CASCADE"),
    )

    tenant_id: Mapped[uuid.UUID] = tenant_column()
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    connector_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    shop: Mapped[str] = mapped_column(Text)
    topic: Mapped[str] = mapped_column(Text)
    webhook_id: Mapped[str] = mapped_column(Text)
    shopify_request_id: Mapped[str | None] = mapped_column(Text)
    customer_id: Mapped[str | None] = mapped_column(Text)
    order_ids: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    result: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
