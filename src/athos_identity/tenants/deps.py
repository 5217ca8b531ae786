"""Request dependencies: the request's transaction, the caller, scope checks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from athos_identity.db import session_factory
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


async def _caller(
    session: Session,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    return await service.authenticate(session, credentials.credentials if credentials else None)


CurrentCaller = Annotated[Caller, Depends(_caller)]


def require_scope(*accepted: Scope) -> Callable[..., Coroutine[Any, Any, Caller]]:
    async def check(caller: CurrentCaller) -> Caller:
        if caller.scopes.isdisjoint(accepted):
            names = " or ".join(s.value for s in accepted)
            raise Forbidden(f"This operation needs an API key with the {names} scope.")
        return caller

    return check


AdminCaller = Annotated[Caller, Depends(require_scope(Scope.admin))]
LookupCaller = Annotated[Caller, Depends(require_scope(Scope.lookup, Scope.admin))]
OperatorCaller = Annotated[Caller, Depends(require_scope(Scope.operator))]
