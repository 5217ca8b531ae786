"""Routes that FastAPI documents but that resolve their own arguments per request.

FastAPI builds the route, its OpenAPI entry and its routing from the endpoint's signature as
usual; per request, ``resolve(request)`` supplies the endpoint's arguments instead of
FastAPI's dependency solving and body handling. For the look-up hot path only: there, those
cost more than the look-up itself (bench/lookup.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException

M = TypeVar("M", bound=BaseModel)

Resolver = Callable[[Request], Awaitable[dict[str, Any]]]


def direct_route(resolve: Resolver) -> type[APIRoute]:
    """A route class whose endpoint is called with ``**await resolve(request)``."""

    class DirectRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            if self.dependencies:  # they would be documented but never run
                raise TypeError(f"{self.path}: a direct route cannot have dependencies=")
            endpoint = self.endpoint

            async def handle(request: Request) -> Response:
                response: Response = await endpoint(**await resolve(request))
                return response

            return handle

    return DirectRoute


def _is_json(content_type: str) -> bool:
    media_type = content_type.partition(";")[0].strip().lower()
    main, _, sub = media_type.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


async def json_body(request: Request, model: type[M]) -> M:
    """The request body as ``model``, refused as FastAPI refuses a body parameter's: 422
    naming each invalid field under ``body``, 400 for JSON that does not parse (through the
    app's RequestValidationError handler), 400 for a body that could not be read.

    Unlike FastAPI, the JSON must be UTF-8, without a byte-order mark (RFC 8259 §8.1): it is
    parsed and validated in one pass by pydantic, which cost half of parsing first."""
    try:
        body = await request.body()
    except HTTPException:  # the body limit's 413
        raise
    except Exception as exc:  # the client went away mid-body, as FastAPI answers it
        raise HTTPException(400, "There was an error parsing the body") from exc
    if not body:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    if not _is_json(request.headers.get("content-type", "")):
        raise RequestValidationError(
            [
                {
                    "type": "model_attributes_type",
                    "loc": ("body",),
                    "msg": "Input should be a valid dictionary or object to extract fields from",
                    "input": None,
                }
            ]
        )
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in errors]
        ) from None
