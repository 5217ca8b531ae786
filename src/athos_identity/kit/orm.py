"""The declarative base every domain's models share."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def tenant_column() -> Mapped[uuid.UUID]:
    """`tenant_id`, first column of every primary key (the Citus distribution column)."""
    return mapped_column(UUID(as_uuid=True), primary_key=True)


def created_at_column() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now())
