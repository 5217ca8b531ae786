from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query

from athos_identity.kit.text import NO_NUL
from athos_identity.sales import repository
from athos_identity.sales.schemas import CustomerOrdersOut, OrderOut
from athos_identity.tenants.deps import AdminCaller, Session

router = APIRouter(prefix="/v1", tags=["sales"])


@router.get(
    "/customers/{customer_id}/orders",
    responses={401: {"description": "Bad API key"}, 403: {"description": "Not an admin key"}},
)
async def customer_orders(
    customer_id: Annotated[str, Path(pattern=NO_NUL, max_length=255)],
    session: Session,
    caller: AdminCaller,
    connector_id: uuid.UUID | None = Query(default=None, description="Only this connector's."),
) -> CustomerOrdersOut:
    """A customer's orders and their lines (sales data only; no personal data)."""
    rows = await repository.orders_of_customer(session, caller.tenant_id, customer_id, connector_id)
    return CustomerOrdersOut(
        customer_id=customer_id, orders=[OrderOut.model_validate(r) for r in rows]
    )
