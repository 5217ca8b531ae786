"""Request dependencies: the request's transaction, the caller, scope checks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy.ext.asyncio import AsyncSession

from athos_identity import observability
from athos_identity.db import scope_to_tenant, session_factory
from athos_identity.kit import ratelimit
from athos_identity.kit.errors import Forbidden
from athos_identity.tenants import service
from athos_identity.tenants.schemas import Scope
from athos_identity.tenants.service import Caller

_bearer = HTTPBearer(auto_error=False, description="An API key: `Bearer athk_...`")


async def _request_session() -> AsyncIterator[AsyncSession]:
    # The one place a request commits: when the route returned without an exception.
    async with session_factory()() as session, session.begin():
        yield session


# scope="function": commit before the response is sent, so a 2xx means the data is stored.
Session = Annotated[AsyncSession, Depends(_request_session, scope="function")]


async def _authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    return await authenticate_request(request, credentials.credentials if credentials else None)


async def authenticate_request(request: Request, token: str | None) -> Caller:
    caller = await service.authenticate(token)
    observability.bind(tenant_id=caller.tenant_id, key_id=caller.key_id)  # logs, audit
    ratelimit.check(caller.key_id, request.scope["path"])  # O(1), before any database work
    return caller


def bearer_token(request: Request) -> str | None:
    """The API key of an `Authorization: Bearer ...` header, read as `HTTPBearer` reads it."""
    scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
    return token if token and scheme.lower() == "bearer" else None


# The caller alone, for routes that reach the database without the request session.
AuthenticatedCaller = Annotated[Caller, Depends(_authenticated)]


async def _caller(caller: AuthenticatedCaller, session: Session) -> Caller:
    await scope_to_tenant(session, caller.tenant_id)
    return caller


# The caller, with the request's session confined to the caller's tenant.
CurrentCaller = Annotated[Caller, Depends(_caller)]


def _check_scope(caller: Caller, accepted: tuple[Scope, ...]) -> Caller:
    if caller.scopes.isdisjoint(accepted):
        names = " or ".join(s.value for s in accepted)
        raise Forbidden(f"This operation needs an API key with the {names} scope.")
    return caller


def require_scope(*accepted: Scope) -> Callable[..., Coroutine[Any, Any, Caller]]:
    async def check(caller: CurrentCaller) -> Caller:
        return _check_scope(caller, accepted)

    return check


LOOKUP_SCOPES = (Scope.lookup, Scope.admin)


async def _lookup_caller(caller: AuthenticatedCaller) -> Caller:
    return _check_scope(caller, LOOKUP_SCOPES)


async def lookup_caller(request: Request) -> Caller:
    """What `LookupCaller` resolves to, without FastAPI's dependency solving: the look-up
    route resolves its arguments itself (kit/direct.py)."""
    caller = await authenticate_request(request, bearer_token(request))
    return _check_scope(caller, LOOKUP_SCOPES)


AdminCaller = Annotated[Caller, Depends(require_scope(Scope.admin))]
# Look-ups open no request session: they read through db.fast_pool(). The route documents
# itself with this; per request it calls lookup_caller().
LookupCaller = Annotated[Caller, Depends(_lookup_caller)]
OperatorCaller = Annotated[Caller, Depends(require_scope(Scope.operator))]
