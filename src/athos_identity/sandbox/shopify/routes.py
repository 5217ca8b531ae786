"""Shopify HTTP routes: OAuth, the GraphQL endpoint, bulk result downloads."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from athos_identity.sandbox.shopify import bulk, oauth
from athos_identity.sandbox.shopify.graphql import Context, run_graphql
from athos_identity.sandbox.state import SandboxState

INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"  # noqa: S105

router = APIRouter()
router.include_router(oauth.router)


def _base_url(request: Request, state: SandboxState) -> str:
    return (state.config.public_url or str(request.base_url)).rstrip("/")


@router.post("/shopify/{shop}/admin/api/{version}/graphql.json")
async def graphql_endpoint(request: Request, shop: str, version: str) -> Response:
    state: SandboxState = request.app.state.sandbox
    store = state.shops.get(shop)
    if store is None:
        return JSONResponse({"errors": "Not Found"}, status_code=404)
    if not store.token_is_valid(request.headers.get("x-shopify-access-token"), state.clock.now()):
        return JSONResponse({"errors": INVALID_TOKEN}, status_code=401)
    raw = await request.body()
    if request.headers.get("content-type", "").startswith("application/graphql"):
        payload: dict[str, Any] = {"query": raw.decode()}
    else:
        try:
            payload = json.loads(raw or b"{}")
        except ValueError:
            return JSONResponse({"errors": "Bad Request: body is not JSON"}, status_code=400)
    query = payload.get("query") if isinstance(payload, dict) else None
    if not isinstance(query, str) or not query.strip():
        return JSONResponse(
            {"errors": {"query": "Required parameter missing or invalid"}}, status_code=400
        )
    context = Context(state, store, _base_url(request, state))
    body = run_graphql(context, query, payload.get("variables"), payload.get("operationName"))
    return JSONResponse(body, headers={"X-Shopify-API-Version": version})


@router.get("/shopify/{shop}/bulk/{number}/{kind}.jsonl")
async def bulk_download(
    request: Request, shop: str, number: int, kind: str, token: str = ""
) -> Response:
    """Stands in for the signed storage URL Shopify hands out: the token is the credential."""
    state: SandboxState = request.app.state.sandbox
    store = state.shops.get(shop)
    operation = store.bulk_operations.get(number) if store else None
    if store is None or operation is None or token != operation.file_token:
        return Response(
            "<Error><Code>AccessDenied</Code></Error>",
            status_code=403,
            media_type="application/xml",
        )
    partial = kind == "partial"
    ready = operation.status == "FAILED" if partial else operation.status == "COMPLETED"
    if not ready:
        return Response(status_code=404)
    chunks = bulk.jsonl_chunks(store, operation, partial=partial, seed=state.config.seed)
    return StreamingResponse(chunks, media_type="application/jsonl")
