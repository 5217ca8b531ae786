"""What the sync engine asks of a platform: pages of neutral records after a position.

A source never sees the database and the engine never sees platform JSON (DESIGN.md §5).
Positions are opaque, JSON-serializable values the engine stores in the run's checkpoint
in the same transaction as the page's records, so a restarted run resumes after the last
committed page.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from athos_identity.identity.records import CustomerRecord
from athos_identity.sales.records import OrderRecord


class Stream(StrEnum):
    customers = "customers"
    orders = "orders"


@dataclass
class SourcePage:
    position: Any  # resume after this page; JSON-serializable
    customers: list[CustomerRecord] = field(default_factory=list)
    orders: list[OrderRecord] = field(default_factory=list)
    deleted_ids: list[str] = field(default_factory=list)
    high_water: datetime | None = None  # latest updated_at in the page
    estimated_total: int | None = None  # records the whole stream is expected to hold


class Source(Protocol):
    """Optionally also `orders_visible_since: datetime | None`: a source that cannot see
    older orders (Shopify without read_all_orders) says so, and full syncs then sweep
    away only unseen orders placed since then."""

    def pages(
        self, stream: Stream, *, since: datetime | None, position: Any
    ) -> AsyncIterator[SourcePage]:
        """Pages of `stream` changed at or after `since` (all when None), after `position`."""
        ...


class TransientSourceError(Exception):
    """The platform failed in a way worth retrying later (5xx, timeouts, cut bodies)."""


def open_source(
    tenant_id: uuid.UUID, connector_id: uuid.UUID, platform: str, region: str | None
) -> AbstractAsyncContextManager[Source]:
    """The connector's source, opened with its credentials (decrypted for the block only)."""
    if platform == "bigcommerce":
        from athos_identity.connectors.bigcommerce.source import open_bigcommerce_source

        return open_bigcommerce_source(tenant_id, connector_id, region)
    if platform == "shopify":
        from athos_identity.connectors.shopify.source import open_shopify_source

        return open_shopify_source(tenant_id, connector_id, region)
    raise ValueError(f"no pull source for platform {platform!r}")
