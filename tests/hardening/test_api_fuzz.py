"""Schemathesis against the API's own OpenAPI document, over HTTP to a real server.

Every operation is fuzzed with a valid key of each scope (admin, lookup, operator) and
without one. Checks: no 5xx; status codes, content types, headers and bodies conform to
what the document says; every 4xx/5xx is application/problem+json. Path ids are drawn
either at random (404s) or from the tenant's real resources, so the found branches run
too. A stateful run then follows the links schemathesis infers between operations.

Bounded for a 2-core machine: few examples per operation, a 10 s timeout per request
(hypothesis' own deadline is off: a slow first run on a loaded CI box is not a bug, and
it would report it as "flaky"), derandomized (the
same cases every run: CI never flakes on a newly found input; run with
ATHOS_FUZZ_EXAMPLES=200 ATHOS_FUZZ_RANDOM=1 to search harder by hand).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import hypothesis
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from schemathesis.checks import CheckContext
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import positive_data_acceptance

from athos_identity.app import create_app
from support import bearer

if TYPE_CHECKING:
    from hardening_server import FuzzTenant, RunningApi

pytest_plugins = ["hardening_server"]  # api_server, fuzz_tenant: the API in a uvicorn process

PROBLEM_JSON = "application/problem+json"
EXAMPLES = int(os.environ.get("ATHOS_FUZZ_EXAMPLES", "12"))
STATEFUL_EXAMPLES = int(os.environ.get("ATHOS_FUZZ_STATEFUL_EXAMPLES", "15"))
DERANDOMIZE = os.environ.get("ATHOS_FUZZ_RANDOM") != "1"

# Operations not fuzzed here, each with why and where it is tested instead.
EXCLUDED: dict[tuple[str, str], str] = {
    # A browser redirect, authenticated by Shopify's HMAC over the query and a single-use
    # state: any fuzzed query is a 303 to the console with shopify=failed, and a
    # meaningful one needs the client secret and a live state. Covered (good grants, every
    # bad callback: HMAC, shop, timestamp, state reuse/expiry, scopes) in
    # tests/connectors/test_shopify_grant.py.
    ("GET", "/v1/shopify/oauth/callback"): "browser redirect; see test_shopify_grant.py",
}
# Unsigned webhook deliveries ARE fuzzed (they must be a 401 problem, never a 5xx); the
# signed paths need the platform secrets and are tested in
# tests/connectors/test_shopify_webhooks.py and tests/connectors/test_bigcommerce_webhooks.py.

SPEC = create_app().openapi()  # the very document the server serves at /openapi.json
CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {
            # FastAPI ignores unknown query parameters, as HTTP APIs commonly do: not a bug.
            "allow-extra-parameters": False,
            # The test sets the Authorization header itself, for each scope and for none.
            "with-security-parameters": False,
        },
        # The coverage phase (every boundary of every schema) sends ~300 cases per JSON
        # body: minutes on 2 cores. ATHOS_FUZZ_COVERAGE=1 turns it on for a deeper run.
        "phases": {"coverage": {"enabled": os.environ.get("ATHOS_FUZZ_COVERAGE") == "1"}},
    }
)
schema = schemathesis.openapi.from_dict(SPEC, config=CONFIG)
for method, path in EXCLUDED:
    schema = schema.exclude(method=method, path=path)


@schemathesis.check
def problem_json_on_errors(ctx: CheckContext, response: Response, case: Any) -> bool | None:
    """Every 4xx/5xx answer is an RFC 9457 problem, whatever the route."""
    if response.status_code >= 400:
        content_type = response.headers.get("content-type", [""])[0]
        assert content_type.split(";")[0].strip() == PROBLEM_JSON, (
            f"{response.status_code} answered with {content_type!r}"
        )
        body = response.json()
        assert {"type", "title", "status", "detail"} <= set(body), body
        assert body["status"] == response.status_code, body
    return None


# --- the tenant's real ids, offered to the path parameters ----------------------------

KNOWN_IDS: dict[str, list[str]] = {}  # path parameter -> ids the fuzzed tenant has
CASES_SEEN: dict[str, int] = {}  # operation -> cases sent so far


@schema.hook
def flatmap_case(context: schemathesis.HookContext, case: schemathesis.Case) -> st.SearchStrategy:
    """In valid cases, a path id is half the time one the tenant really has (else a random
    one: 404), so the found branches are fuzzed too. Invalid cases are left alone."""
    if not case.path_parameters or case.meta is None:
        return st.just(case)
    if case.meta.generation.mode != schemathesis.GenerationMode.POSITIVE:
        return st.just(case)
    choices = {
        name: st.sampled_from([value, *KNOWN_IDS.get(name, [])])
        for name, value in case.path_parameters.items()
    }

    def with_ids(params: dict[str, Any]) -> schemathesis.Case:
        case.path_parameters = params
        return case

    return st.fixed_dictionaries(choices).map(with_ids)


FUZZ_SETTINGS = hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,  # the server's latency is not the property under test
    derandomize=DERANDOMIZE,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
# Not run: positive_data_acceptance. The API validates meaning that JSON Schema does not
# express (a myshopify.com domain, an e-mail's syntax, a store hash or API path); such
# schema-valid but meaningless input gets a documented 422 problem, which is right.
EXCLUDED_CHECKS = [positive_data_acceptance]


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_operation_with_every_scope(
    case: schemathesis.Case, api_server: RunningApi, fuzz_tenant: FuzzTenant
) -> None:
    """Each case is sent with an admin key; every third one also with a lookup key, an
    operator key and none (those answers vary less: mostly 401/403, or 200 for look-ups)."""
    KNOWN_IDS.update(fuzz_tenant.ids)
    seen = CASES_SEEN[case.operation.label] = CASES_SEEN.get(case.operation.label, 0) + 1
    scopes = ("admin", "lookup", "operator", None) if seen % 3 == 1 else ("admin",)
    for scope in scopes:
        case.call_and_validate(
            base_url=api_server.base_url,
            headers=bearer(fuzz_tenant.keys[scope]) if scope else {},
            additional_checks=[problem_json_on_errors],
            excluded_checks=EXCLUDED_CHECKS,
            allow_redirects=False,
            timeout=10,  # the bound of one request: a hang fails, it does not stall CI
        )


def test_the_fuzzed_operations_are_every_documented_one_but_the_listed_exclusions() -> None:
    documented = {
        (method.upper(), path)
        for path, item in SPEC["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }
    fuzzed = {
        (result.ok().method.upper(), result.ok().path) for result in schema.get_all_operations()
    }
    assert set(EXCLUDED) <= documented, "an exclusion names no operation"
    assert fuzzed == documented - set(EXCLUDED)


def test_stateful_sequences_follow_the_inferred_links(
    api_server: RunningApi, fuzz_tenant: FuzzTenant
) -> None:
    """Sequences of calls where one answer feeds the next (create a connector, then read,
    patch, grant, sync, delete it...), as schemathesis infers the links from the schema."""
    admin = bearer(fuzz_tenant.keys["admin"])

    # A schema object of its own: the one above carries the path-id hook and what its
    # parametrized runs learnt, which made hypothesis see "inconsistent data generation".
    fresh = schemathesis.openapi.from_dict(SPEC, config=CONFIG)
    for method, path in EXCLUDED:
        fresh = fresh.exclude(method=method, path=path)

    class Workflow(fresh.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"base_url": api_server.base_url, "headers": admin, "timeout": 10}

        def validate_response(self, response: Response, case: schemathesis.Case, **kw: Any):
            case.validate_response(
                response,
                additional_checks=[problem_json_on_errors],
                excluded_checks=EXCLUDED_CHECKS,
            )

    Workflow.run(
        settings=hypothesis.settings(
            FUZZ_SETTINGS, max_examples=STATEFUL_EXAMPLES, stateful_step_count=6
        )
    )
