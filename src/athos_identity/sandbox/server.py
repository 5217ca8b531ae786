"""``create_sandbox_app(config)``: one FastAPI app serving both simulated platforms."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from ipaddress import ip_address

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from athos_identity.sandbox import admin
from athos_identity.sandbox.bigcommerce import routes as bigcommerce_routes
from athos_identity.sandbox.bigcommerce.quota import QuotaHeaders
from athos_identity.sandbox.bigcommerce.routes import BigCommerceError
from athos_identity.sandbox.config import SandboxConfig
from athos_identity.sandbox.faults import ASGIApp, FaultMiddleware, Receive, Scope, Send
from athos_identity.sandbox.state import SandboxError, SandboxState


class LoopbackOnly:
    """The sandbox hands out secrets on GET /sandbox/state: refuse other machines by default."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not _is_loopback(scope.get("client")):
            response = JSONResponse(
                {
                    "detail": "the sandbox only answers loopback clients; "
                    "start it with --allow-remote"
                },
                status_code=403,
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _is_loopback(client: tuple[str, int] | None) -> bool:
    if client is None:
        return True  # in-process transports (tests) have no peer
    return client[0] == "testclient" or is_loopback_host(client[0])


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost; anything else (0.0.0.0 included) reaches other machines."""
    if host.lower() == "localhost":
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def create_sandbox_app(config: SandboxConfig | None = None) -> FastAPI:
    config = config or SandboxConfig()
    state = SandboxState(config)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await state.dispatcher.close()

    app = FastAPI(
        title="athos-identity platform sandbox",
        lifespan=lifespan,
        docs_url="/sandbox/docs",
        openapi_url="/sandbox/openapi.json",
        redoc_url=None,
    )
    app.state.sandbox = state
    app.include_router(admin.router)
    app.include_router(bigcommerce_routes.router)
    _include_shopify(app)

    @app.exception_handler(BigCommerceError)
    async def bigcommerce_error(_: Request, error: BigCommerceError) -> Response:
        return error.response()

    @app.exception_handler(SandboxError)
    async def sandbox_error(_: Request, error: SandboxError) -> Response:
        return JSONResponse({"detail": error.detail}, status_code=error.status)

    app.add_middleware(FaultMiddleware, registry=state.faults)
    # Outside the faults, so injected errors carry the store's quota headers as well.
    app.add_middleware(QuotaHeaders, headers_for=state.quota_headers_for)
    if not config.allow_remote:
        app.add_middleware(LoopbackOnly)
    return app


def _include_shopify(app: FastAPI) -> None:
    try:
        from athos_identity.sandbox.shopify import routes as shopify_routes
    except ImportError:  # pragma: no cover - during incremental development only
        return
    app.include_router(shopify_routes.router)
