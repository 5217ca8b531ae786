"""One error base class and the RFC 9457 problem+json rendering of every 4xx/5xx.

Error bodies never echo request values: a request may carry raw e-mails or phones.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class AppError(Exception):
    """A domain error: subclasses set the status and title; `detail` is safe to show."""

    status: int = 500
    title: str = "Internal server error"
    slug: str = "internal"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers
        self.extensions = extensions


class BadRequest(AppError):
    status, title, slug = 400, "Bad request", "bad-request"


class Unauthorized(AppError):
    status, title, slug = 401, "Unauthorized", "unauthorized"

    def __init__(self, detail: str, **kw: Any) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"}, **kw)


class Forbidden(AppError):
    status, title, slug = 403, "Forbidden", "forbidden"


class NotFound(AppError):
    status, title, slug = 404, "Not found", "not-found"


class Conflict(AppError):
    status, title, slug = 409, "Conflict", "conflict"


class PayloadTooLarge(AppError):
    status, title, slug = 413, "Payload too large", "payload-too-large"


class InvalidInput(AppError):
    status, title, slug = 422, "Invalid input", "invalid-input"


class ServiceUnavailable(AppError):
    status, title, slug = 503, "Service unavailable", "unavailable"


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"/problems/{slug}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    body.update({k: v for k, v in extensions.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def field_path(location: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in location)


def safe_validation_errors(errors: Any) -> list[dict[str, Any]]:
    """Pydantic's errors without `input`/`ctx`, which may hold the submitted values."""
    return [{"field": field_path(e["loc"]), "message": e["msg"]} for e in errors]


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return problem(
        exc.status,
        exc.title,
        exc.detail,
        slug=exc.slug,
        headers=exc.headers,
        errors=exc.errors,
        **exc.extensions,
    )


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return problem(
            400, "Malformed JSON", "The request body is not valid JSON.", slug="bad-json"
        )
    return problem(
        422,
        "Invalid input",
        "; ".join(f"{field_path(e['loc'])}: {e['msg']}" for e in errors[:5]),
        slug="invalid-input",
        errors=safe_validation_errors(errors),
    )


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (Starlette's 405 names only the first
    route that matched the path: `Allow: POST` for /v1/keys, which serves GET too)."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.router.routes):
        if route.path and route.methods and compile_path(route.path)[0].match(request.url.path):
            methods |= set(route.methods)
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
    detail = exc.detail if isinstance(exc.detail, str) else title
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
    return problem(exc.status_code, title, detail, slug="http", headers=headers or None)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # The message of an unexpected exception may carry data; log its type and frames only.
    frames = "".join(traceback.format_tb(exc.__traceback__))
    log.error(
        "unhandled %s on %s %s\n%s", type(exc).__name__, request.method, request.url.path, frames
    )
    return problem(500, "Internal server error", "An unexpected error occurred.", slug="internal")


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An RFC 9457 problem: never echoes the submitted values.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "/problems/{slug}"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "Each invalid field or item, by its position in the request.",
            "items": {
                "type": "object",
                "required": ["field"],
                "properties": {
                    "field": {"type": "string", "description": "e.g. body.records.3.phones.0"},
                    "message": {"type": "string"},
                    "index": {"type": "integer", "description": "the item's position"},
                    "reason": {"type": "string"},
                },
            },
        },
    },
    "additionalProperties": True,
}
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
MALFORMED_JSON = {"description": "The request body is not valid JSON"}
UNAUTHENTICATED = {"description": "Missing, unknown or revoked API key"}
# Sent by the API-key dependency (kit/ratelimit.check) before the route runs.
RATE_LIMITED = {
    "description": "This API key sent more requests than its limit (per key and API process)",
    "headers": {
        "Retry-After": {
            "description": "Seconds to wait before the next request",
            "schema": {"type": "integer", "minimum": 1},
        }
    },
}
# Sent by BodySizeLimitMiddleware, before routing, to any request of these methods.
BODY_TOO_LARGE = {"description": "The request body is larger than the limit (max_body_bytes)"}
BODY_METHODS = frozenset({"post", "put", "patch"})


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Make the OpenAPI document say what the handlers above send: every 4xx/5xx response
    is `application/problem+json` with the Problem schema (FastAPI's default 422 body,
    HTTPValidationError, is never sent), every JSON body may be answered 400, every
    operation behind an API key 401 and 429, and every POST/PUT/PATCH 413."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = PROBLEM_SCHEMA
    for path_item in schema.get("paths", {}).values():
        for method, operation in path_item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses: dict[str, Any] = operation["responses"]
            if "requestBody" in operation:
                responses.setdefault("400", dict(MALFORMED_JSON))
            if operation.get("security"):
                responses.setdefault("401", dict(UNAUTHENTICATED))
                responses.setdefault("429", dict(RATE_LIMITED))
            if method in BODY_METHODS:
                responses.setdefault("413", dict(BODY_TOO_LARGE))
            for code, response in responses.items():
                if code[:1] in ("4", "5"):
                    response["content"] = {PROBLEM_JSON: {"schema": PROBLEM_REF}}
    text = str(schema.get("paths", {}))
    for unused in ("HTTPValidationError", "ValidationError"):
        if f"/{unused}'" not in text:
            components.pop(unused, None)
    return schema


def _install_problem_documentation(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    _install_problem_documentation(app)
