"""GraphQL Admin API: parsing and validation (graphql-core), query cost, throttling, resolvers.

Shopify quirks reproduced: HTTP 200 with ``errors`` for validation failures and for
THROTTLED; ``extensions.cost`` on every response; "Field 'x' doesn't exist on type 'Y'";
orders older than 60 days invisible without ``read_all_orders``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import datetime
from itertools import islice
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    build_schema,
    execute,
    parse,
    validate,
    value_from_ast_untyped,
)

from athos_identity.sandbox.data import (
    DAY,
    MAX_ORDER_UPDATE_LAG_SECONDS,
    Customer,
    Order,
    RecordStore,
)
from athos_identity.sandbox.shopify import nodes
from athos_identity.sandbox.shopify.schema import SDL
from athos_identity.sandbox.shopify.store import ShopifyShop, effective_scopes
from athos_identity.sandbox.state import SandboxState

SCHEMA: GraphQLSchema = build_schema(SDL)
MAX_PAGE_SIZE = 250
MAX_QUERY_COST = 1000
MUTATION_COST = 10
RECENT_ORDERS_SECONDS = 60 * DAY
DOCS_RATE_LIMITS = "https://shopify.dev/api/usage/rate-limits"


# --- cost -------------------------------------------------------------------------------------


def _unwrap(type_: Any) -> Any:
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        type_ = type_.of_type
    return type_


def _is_connection(type_: Any) -> bool:
    return getattr(type_, "name", "").endswith("Connection")


class CostCalculator:
    """Shopify's rules: scalars and enums 0, objects 1, connections 2 + size x node cost,
    mutations 10. ``data`` given: actual cost from what was returned."""

    def __init__(self, document: DocumentNode, variables: dict[str, Any]) -> None:
        self.variables = variables
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }

    def operation(self, operation: OperationDefinitionNode, data: Any = None) -> int:
        if operation.operation.value == "mutation":
            return MUTATION_COST * len(list(self._fields(operation.selection_set)))
        root = SCHEMA.query_type
        return self._selection_cost(operation.selection_set, root, data, requested=data is None)

    def _fields(self, selection_set: SelectionSetNode | None) -> Iterator[FieldNode]:
        if selection_set is None:
            return
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                yield selection
            elif isinstance(selection, InlineFragmentNode):
                yield from self._fields(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None:
                    yield from self._fields(fragment.selection_set)

    def _argument(self, field: FieldNode, name: str) -> Any:
        for argument in field.arguments or ():
            if argument.name.value == name:
                return value_from_ast_untyped(argument.value, self.variables)
        return None

    def _selection_cost(
        self, selection_set: SelectionSetNode | None, parent: Any, data: Any, *, requested: bool
    ) -> int:
        if not isinstance(parent, GraphQLObjectType):
            return 0
        total = 0
        for field in self._fields(selection_set):
            definition = parent.fields.get(field.name.value)
            if definition is None:
                continue
            field_type = _unwrap(definition.type)
            key = field.alias.value if field.alias else field.name.value
            value = data.get(key) if isinstance(data, dict) else None
            if not isinstance(field_type, GraphQLObjectType):
                continue
            if _is_connection(field_type):
                total += self._connection_cost(field, field_type, value, requested=requested)
            elif field_type.name == "PageInfo":
                continue
            elif isinstance(value, list):
                total += sum(
                    1
                    + self._selection_cost(
                        field.selection_set, field_type, item, requested=requested
                    )
                    for item in value
                )
            elif requested or value is not None:
                total += 1 + self._selection_cost(
                    field.selection_set, field_type, value, requested=requested
                )
        return total

    def _connection_cost(
        self, field: FieldNode, connection_type: GraphQLObjectType, value: Any, *, requested: bool
    ) -> int:
        node_type = _unwrap(connection_type.fields["nodes"].type)
        node_selections: list[tuple[SelectionSetNode | None, str]] = []
        for child in self._fields(field.selection_set):
            if child.name.value == "nodes":
                node_selections.append((child.selection_set, "nodes"))
            elif child.name.value == "edges":
                for edge_field in self._fields(child.selection_set):
                    if edge_field.name.value == "node":
                        node_selections.append((edge_field.selection_set, "edges"))
        if requested:
            size = self._argument(field, "first") or self._argument(field, "last") or 0
            per_node = (
                sum(
                    1 + self._selection_cost(s, node_type, None, requested=True)
                    for s, _ in node_selections
                )
                or 1
            )
            return 2 + int(size) * per_node
        if not isinstance(value, dict):
            return 0
        total = 2
        for selection, source in node_selections:
            items = (
                value.get("nodes")
                if source == "nodes"
                else [edge.get("node") for edge in value.get("edges") or ()]
            )
            for item in items or ():
                total += 1 + self._selection_cost(selection, node_type, item, requested=False)
        return total


# --- search syntax ----------------------------------------------------------------------------

SEARCH_TERM = re.compile(
    r"(?P<field>[a-z_]+):(?P<op>>=|<=|>|<|=)?\s*(?P<value>'[^']*'|\"[^\"]*\"|\S+)"
)


def _moment(text: str) -> int:
    text = text.strip("'\"")
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.now().astimezone().tzinfo)
    return int(parsed.timestamp())


class SearchFilter:
    """``updated_at``/``created_at`` comparisons; other terms become search warnings."""

    def __init__(self, query: str | None) -> None:
        self.min_updated: int | None = None
        self.max_updated: int | None = None
        self.min_created: int | None = None
        self.warnings: list[dict[str, str]] = []
        for match in SEARCH_TERM.finditer(query or ""):
            field, op, value = match["field"], match["op"] or "=", match["value"]
            if field not in ("updated_at", "created_at"):
                self.warnings.append(
                    {"field": field, "message": "Invalid search field for this query."}
                )
                continue
            try:
                moment = _moment(value)
            except ValueError:
                self.warnings.append({"field": field, "message": "Invalid date."})
                continue
            low = moment + 1 if op == ">" else moment if op in (">=", "=") else None
            high = moment - 1 if op == "<" else moment if op in ("<=", "=") else None
            if field == "updated_at":
                self.min_updated = _max(self.min_updated, low)
                self.max_updated = _min(self.max_updated, high)
            elif low is not None:
                self.min_created = _max(self.min_created, low)


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def _min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


# --- resolvers --------------------------------------------------------------------------------


class Context:
    def __init__(self, state: SandboxState, shop: ShopifyShop, base_url: str) -> None:
        self.state = state
        self.shop = shop
        self.base_url = base_url
        self.search_warnings: list[dict[str, Any]] = []


def access_denied(field: str, scope: str) -> GraphQLError:
    return GraphQLError(
        f"Access denied for {field} field. Required access: `{scope}` access scope.",
        extensions={
            "code": "ACCESS_DENIED",
            "documentation": "https://shopify.dev/api/usage/access-scopes",
            "requiredAccess": f"`{scope}` access scope.",
        },
    )


def require(context: Context, field: str, scope: str) -> None:
    if scope not in context.shop.scopes():
        raise access_denied(field, scope)


def _page_size(first: int | None, last: int | None) -> int:
    if first is None and last is None:
        raise GraphQLError("you must provide one of first or last")
    if last is not None:
        raise GraphQLError("The sandbox pages forward only: use first/after")
    if first is None or first < 0 or first > MAX_PAGE_SIZE:
        raise GraphQLError(
            f"The value of the argument `first` is too big. Maximum is {MAX_PAGE_SIZE}.",
            extensions={"code": "BAD_REQUEST"},
        )
    return first


def orders_cutoff(context: Context) -> int | None:
    """Without read_all_orders only the last 60 days of orders exist for the app."""
    if "read_all_orders" in context.shop.scopes():
        return None
    return int(context.state.clock.now()) - RECENT_ORDERS_SECONDS


def ordered_records(
    records: RecordStore[Any],
    sort_key: str,
    after: str | None,
    search: SearchFilter,
    min_created: int | None,
) -> Iterator[Any]:
    """Records in the requested order, resuming after the cursor, filtered."""
    low = _max(search.min_updated, min_created)  # updated_at >= created_at always
    high = search.max_updated
    created_floor = _max(search.min_created, min_created)
    decoded = nodes.decode_cursor(after) if after else None
    if after and (decoded is None or decoded.get("sort") != sort_key):
        raise GraphQLError("Invalid cursor for this sort key", extensions={"code": "BAD_REQUEST"})
    if sort_key == "UPDATED_AT":
        after_key = (int(decoded["u"]), int(decoded["id"])) if decoded else None
        stream = records.iter_by_updated(after_key, low, high)
    else:
        stream = records.iter_by_id(int(decoded["id"]) if decoded else None, low, high)
    if created_floor is None:
        return stream
    return (r for r in stream if r.created_at >= created_floor)


def record_connection(
    context: Context,
    records: RecordStore[Any],
    make_node: Callable[..., Any],
    first: int | None,
    last: int | None,
    after: str | None,
    sort_key: str,
    query: str | None,
    min_created: int | None,
) -> dict[str, Any]:
    size = _page_size(first, last)
    search = SearchFilter(query)
    if search.warnings:
        context.search_warnings.append({"query": query, "warnings": search.warnings})
    if sort_key not in ("ID", "UPDATED_AT"):
        sort_key = "ID"
    page = list(islice(ordered_records(records, sort_key, after, search, min_created), size + 1))
    has_next = len(page) > size
    page = page[:size]
    cursors = [nodes.encode_cursor({"sort": sort_key, "u": r.updated_at, "id": r.id}) for r in page]
    return nodes.connection(
        [make_node(r, context.shop) for r in page], cursors, has_next, after is not None
    )


def count_orders(records: RecordStore[Order], search: SearchFilter, cutoff: int | None) -> int:
    floor = _max(search.min_created, cutoff)
    if floor is None:
        return records.count(search.min_updated, search.max_updated)
    low = _max(search.min_updated, floor)
    # Everything updated after floor + lag was created after floor; check the band.
    band_end = floor + MAX_ORDER_UPDATE_LAG_SECONDS
    certain = records.count(_max(low, band_end), search.max_updated)
    band_high = _min(search.max_updated, band_end - 1)
    in_band = sum(1 for o in records.iter_by_updated(None, low, band_high) if o.created_at >= floor)
    return certain + in_band


def build_root(context: Context) -> dict[str, Any]:
    shop = context.shop
    state = context.state

    def customers(
        _info: Any,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        sortKey: str = "ID",
        query: str | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        require(context, "customers", "read_customers")
        return record_connection(
            context,
            shop.data.customers,
            nodes.customer_node,
            first,
            last,
            after,
            sortKey,
            query,
            None,
        )

    def orders(
        _info: Any,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        sortKey: str = "ID",
        query: str | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        require(context, "orders", "read_orders")
        return record_connection(
            context,
            shop.data.orders,
            nodes.order_node,
            first,
            last,
            after,
            sortKey,
            query,
            orders_cutoff(context),
        )

    def customer(_info: Any, id: str) -> dict[str, Any] | None:
        require(context, "customer", "read_customers")
        number = nodes.gid_number(id, "Customer")
        found = shop.data.customers.get(number) if number else None
        return nodes.customer_node(found, shop) if found else None

    def order(_info: Any, id: str) -> dict[str, Any] | None:
        require(context, "order", "read_orders")
        number = nodes.gid_number(id, "Order")
        found = shop.data.orders.get(number) if number else None
        cutoff = orders_cutoff(context)
        if found is None or (cutoff is not None and found.created_at < cutoff):
            return None
        return nodes.order_node(found, shop)

    def counted(total: int, limit: int | None) -> dict[str, Any]:
        if limit is not None and total > limit:
            return {"count": limit, "precision": "AT_LEAST"}
        return {"count": total, "precision": "EXACT"}

    def customers_count(
        _info: Any, query: str | None = None, limit: int | None = 10000
    ) -> dict[str, Any]:
        require(context, "customersCount", "read_customers")
        search = SearchFilter(query)
        return counted(shop.data.customers.count(search.min_updated, search.max_updated), limit)

    def orders_count(
        _info: Any, query: str | None = None, limit: int | None = 10000
    ) -> dict[str, Any]:
        require(context, "ordersCount", "read_orders")
        return counted(
            count_orders(shop.data.orders, SearchFilter(query), orders_cutoff(context)), limit
        )

    from athos_identity.sandbox.shopify import bulk, webhooks

    return {
        "shop": {
            "id": nodes.gid("Shop", shop.shop_id),
            "name": shop.name.replace("-", " ").title(),
            "email": f"owner@{shop.name}.example",
            "myshopifyDomain": shop.domain,
            "currencyCode": shop.data.currency,
            "ianaTimezone": "UTC",
            "billingAddress": {
                "countryCodeV2": shop.data.country,
                "country": nodes.COUNTRY_NAMES.get(shop.data.country),
                "city": "Springfield",
            },
            "plan": {
                "displayName": shop.plan.title(),
                "partnerDevelopment": False,
                "shopifyPlus": shop.plan == "plus",
            },
        },
        "currentAppInstallation": {
            "id": nodes.gid("AppInstallation", shop.shop_id),
            "accessScopes": [
                {"handle": s, "description": s} for s in sorted(shop.granted_scopes or ())
            ],
        },
        "customers": customers,
        "orders": orders,
        "customer": customer,
        "order": order,
        "customersCount": customers_count,
        "ordersCount": orders_count,
        "bulkOperation": lambda _info, id: bulk.find(context, id),
        "currentBulkOperation": lambda _info, type="QUERY": bulk.current(context),
        "webhookSubscriptions": lambda _info, first=None, after=None: webhooks.subscriptions(
            context, first
        ),
        "bulkOperationRunQuery": lambda _info, query, groupObjects=None: bulk.run_query(
            context, query
        ),
        "bulkOperationCancel": lambda _info, id: bulk.cancel(context, id),
        "appRevokeAccessScopes": lambda _info, scopes: revoke_scopes(context, scopes),
        "appUninstall": lambda _info: uninstall(context),
        "webhookSubscriptionCreate": lambda _info, topic, webhookSubscription: (
            webhooks.create_subscription(context, topic, webhookSubscription)
        ),
        "webhookSubscriptionDelete": lambda _info, id: webhooks.delete_subscription(context, id),
        "_state": state,
    }


SCOPE_HANDLE = re.compile(r"^(unauthenticated_)?(read|write)_[a-z][a-z_]*$")
REVOKE_ERRORS = {
    "UNKNOWN_SCOPES": "The requested list of scopes to revoke includes invalid handles",
    "CANNOT_REVOKE_REQUIRED_SCOPES": "Required scopes cannot be revoked",
    "CANNOT_REVOKE_IMPLIED_SCOPES": "Already granted implied scopes cannot be revoked",
    "CANNOT_REVOKE_UNDECLARED_SCOPES": "Cannot revoke optional scopes that haven't been declared",
}


def _revoke_refusal(context: Context, scope: str) -> str | None:
    """Why Shopify refuses to revoke this scope (an error code), or None."""
    shop = context.shop
    granted = shop.granted_scopes or frozenset()
    if not SCOPE_HANDLE.match(scope):
        return "UNKNOWN_SCOPES"
    if scope in granted and scope not in shop.optional_granted:
        return None if shop.required_scopes_revocable else "CANNOT_REVOKE_REQUIRED_SCOPES"
    if scope not in granted and scope in effective_scopes(granted):
        return "CANNOT_REVOKE_IMPLIED_SCOPES"  # read_x that comes with a granted write_x
    if scope not in context.state.config.shopify_optional_scopes and scope not in granted:
        return "CANNOT_REVOKE_UNDECLARED_SCOPES"
    return None


def revoke_scopes(context: Context, scopes: list[str]) -> dict[str, Any]:
    """Only optional scopes can be given back; one refused scope and nothing is revoked."""
    shop = context.shop
    if not shop.installed:
        error = {"field": ["scopes"], "code": "APP_NOT_INSTALLED",
                 "message": "App is not installed on shop"}  # fmt: skip
        return {"revoked": None, "userErrors": [error]}
    refused: dict[str, list[str]] = {}
    for scope in dict.fromkeys(scopes):
        code = _revoke_refusal(context, scope)
        if code is not None:
            refused.setdefault(code, []).append(scope)
    if refused:
        errors = [
            {"field": ["scopes"], "code": code, "message": f"{REVOKE_ERRORS[code]}: "
             + ", ".join(handles)}
            for code, handles in refused.items()
        ]  # fmt: skip
        return {"revoked": None, "userErrors": errors}
    granted = shop.granted_scopes or frozenset()
    revoked = [s for s in dict.fromkeys(scopes) if s in granted]  # declared, not granted: no-op
    shop.granted_scopes = frozenset(granted - set(revoked))
    shop.optional_granted = shop.optional_granted - set(revoked)
    return {"revoked": [{"handle": s, "description": s} for s in revoked], "userErrors": []}


def uninstall(context: Context) -> dict[str, Any]:
    from athos_identity.sandbox.shopify.webhooks import uninstall_app

    uninstall_app(context.state, context.shop)
    return {"app": {"id": nodes.gid("App", 1), "title": "athos sandbox app"}, "userErrors": []}


# --- request handling -------------------------------------------------------------------------

UNDEFINED_FIELD = re.compile(r"Cannot query field '(?P<field>\w+)' on type '(?P<type>\w+)'")


def shopify_error(error: GraphQLError) -> dict[str, Any]:
    formatted: dict[str, Any] = error.formatted  # type: ignore[assignment]
    match = UNDEFINED_FIELD.search(error.message)
    if match:
        formatted = {
            "message": f"Field '{match['field']}' doesn't exist on type '{match['type']}'",
            "locations": formatted.get("locations", []),
            "path": ["query"],
            "extensions": {
                "code": "undefinedField",
                "typeName": match["type"],
                "fieldName": match["field"],
            },
        }
    return formatted


def cost_extension(requested: int, actual: int | None, shop: ShopifyShop) -> dict[str, Any]:
    return {
        "cost": {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": shop.bucket.status().as_json(),
        }
    }


def run_graphql(
    context: Context, query: str, variables: dict[str, Any] | None, operation_name: str | None
) -> dict[str, Any]:
    shop = context.shop
    variables = variables or {}
    try:
        document = parse(query)
    except GraphQLError as error:
        return {"errors": [error.formatted], "extensions": cost_extension(0, 0, shop)}
    validation_errors = validate(SCHEMA, document)
    if validation_errors:
        return {
            "errors": [shopify_error(e) for e in validation_errors],
            "extensions": cost_extension(0, 0, shop),
        }
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    operation = next(
        (o for o in operations if operation_name in (None, getattr(o.name, "value", None))), None
    )
    if operation is None:
        return {"errors": [{"message": "No operation named " + str(operation_name)}]}
    calculator = CostCalculator(document, variables)
    requested = calculator.operation(operation)
    if requested > MAX_QUERY_COST:
        return {
            "errors": [
                {
                    "message": f"Query cost is {requested}, which exceeds the single query "
                    f"max cost limit ({MAX_QUERY_COST}).",
                    "extensions": {
                        "code": "MAX_COST_EXCEEDED",
                        "cost": requested,
                        "maxCost": MAX_QUERY_COST,
                        "documentation": DOCS_RATE_LIMITS,
                    },
                }
            ],
            "extensions": cost_extension(requested, None, shop),
        }
    allowed, _ = shop.bucket.try_spend(requested)
    if not allowed:
        throttled = {"code": "THROTTLED", "documentation": DOCS_RATE_LIMITS}
        return {
            "errors": [{"message": "Throttled", "extensions": throttled}],
            "extensions": cost_extension(requested, None, shop),
        }
    result = execute(
        SCHEMA,
        document,
        root_value=build_root(context),
        variable_values=variables,
        operation_name=operation_name,
        context_value=context,
    )
    actual = (
        requested
        if operation.operation.value == "mutation"
        else calculator.operation(operation, result.data or {})
    )
    shop.bucket.refund(requested - actual)
    body: dict[str, Any] = {}
    if result.errors:
        body["errors"] = [shopify_error(e) for e in result.errors]
    body["data"] = result.data
    body["extensions"] = cost_extension(requested, actual, shop)
    if context.search_warnings:
        body["extensions"]["search"] = context.search_warnings
    return body


__all__ = ["SCHEMA", "Context", "Customer", "run_graphql"]
