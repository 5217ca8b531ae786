from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from athos_identity.tenants import service
from athos_identity.tenants.deps import AdminCaller, OperatorCaller, Session
from athos_identity.tenants.schemas import (
    KeyCreate,
    KeyCreated,
    KeyOut,
    TenantCreate,
    TenantCreated,
    TenantOut,
)

router = APIRouter(prefix="/v1", tags=["tenants and keys"])

PROBLEMS = {
    401: {"description": "Missing, unknown or revoked API key"},
    403: {"description": "The key lacks the needed scope"},
    422: {"description": "Invalid input"},
}


@router.post("/tenants", status_code=status.HTTP_201_CREATED, responses=PROBLEMS)
async def create_tenant(body: TenantCreate, session: Session, _: OperatorCaller) -> TenantCreated:
    """Create a tenant (operator scope) and its first admin key, shown once."""
    tenant, key, token = await service.create_tenant(session, body.name, body.default_region)
    return TenantCreated(
        tenant=TenantOut.model_validate(tenant),
        admin_key=KeyCreated.of(key, token),
    )


@router.post("/keys", status_code=status.HTTP_201_CREATED, responses=PROBLEMS)
async def create_key(body: KeyCreate, session: Session, caller: AdminCaller) -> KeyCreated:
    """Create an API key for the caller's tenant. The key is in this response only."""
    key, token = await service.create_key_for_caller(session, caller, body.scopes, body.name)
    return KeyCreated.of(key, token)


@router.get("/keys", responses=PROBLEMS)
async def list_keys(session: Session, _: AdminCaller) -> list[KeyOut]:
    """The tenant's API keys, revoked ones included; never the keys themselves."""
    return [KeyOut.model_validate(k) for k in await service.list_keys(session)]


@router.delete("/keys/{key_id}", responses={**PROBLEMS, 404: {"description": "No such key"}})
async def revoke_key(key_id: uuid.UUID, session: Session, _: AdminCaller) -> KeyOut:
    """Revoke a key at once; later requests with it get 401."""
    return KeyOut.model_validate(await service.revoke_key(session, key_id))
