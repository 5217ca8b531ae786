"""Direct routes: FastAPI documents them, the route resolves its own arguments."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, Depends, FastAPI, Request, Response

from athos_identity.kit.direct import direct_route


async def _resolve(request: Request) -> dict[str, object]:
    return {}


async def endpoint() -> Response:
    return Response(b"ok")


def test_a_direct_route_refuses_dependencies_it_would_never_run() -> None:
    router = APIRouter(dependencies=[Depends(lambda: None)])
    with pytest.raises(TypeError, match="cannot have dependencies"):
        router.add_api_route("/x", endpoint, route_class_override=direct_route(_resolve))
        FastAPI().include_router(router)
