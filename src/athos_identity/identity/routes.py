from __future__ import annotations

import orjson
from fastapi import APIRouter, Request, Response

from athos_identity.identity import service
from athos_identity.identity.schemas import (
    EraseIn,
    EraseOut,
    IngestOut,
    LookupIn,
    LookupOut,
    RecordsIn,
)
from athos_identity.kit.direct import direct_route, json_body
from athos_identity.tenants.deps import AdminCaller, LookupCaller, Session, lookup_caller

router = APIRouter(prefix="/v1/identity", tags=["identity"])

PROBLEMS = {
    401: {"description": "Missing, unknown or revoked API key"},
    403: {"description": "The key lacks the needed scope"},
    422: {"description": "Invalid input; `errors` names each invalid item by position"},
}


async def lookup(body: LookupIn, caller: LookupCaller) -> Response:
    """Customer IDs for e-mails and phones, raw or pre-hashed, in request order.

    Raw identifiers are normalized as in the messaging guide; a pre-hashed value is the
    SHA-256 of the normalized form, as 64 hex or 44 base64 characters.
    """
    results = await service.lookup(caller, body.identifiers)
    # Serialized directly: the hot path skips response-model validation (see service.lookup).
    return Response(orjson.dumps({"results": results}), media_type="application/json")


async def _lookup_arguments(request: Request) -> dict[str, object]:
    # The caller first: without a valid key the answer is 401 whatever the body (FastAPI
    # would parse the JSON first and answer malformed JSON with 400).
    caller = await lookup_caller(request)
    return {"caller": caller, "body": await json_body(request, LookupIn)}


router.add_api_route(
    "/lookup",
    lookup,
    methods=["POST"],
    response_model=LookupOut,
    responses=PROBLEMS,
    route_class_override=direct_route(_lookup_arguments),
)


@router.post("/records", responses=PROBLEMS)
async def ingest(body: RecordsIn, session: Session, caller: AdminCaller) -> IngestOut:
    """Link customer IDs to their e-mails and phones (for stores on any other platform).

    Each record lists ALL of a customer's identifiers: links the record no longer lists are
    removed. Invalid identifiers are skipped and reported; replaying a batch changes nothing.
    """
    return await service.ingest(session, caller, body.records)


ERASE_PROBLEMS = {
    **PROBLEMS,
    404: {"description": "A customer selector names a connector this tenant does not have"},
}


@router.post("/erase", responses=ERASE_PROBLEMS)
async def erase(body: EraseIn, session: Session, caller: AdminCaller) -> EraseOut:
    """Forget identifiers or customers: their links, and the hashed e-mails and phones on
    their orders, are deleted at once. A `connector_id` the tenant does not have is a 404."""
    return await service.erase(session, caller, body.identifiers, body.customers)
