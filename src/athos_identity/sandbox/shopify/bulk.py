"""Bulk operations: asynchronous CREATED -> RUNNING -> COMPLETED, results as streamed JSONL.

The export is regenerated from a snapshot of the store while it is downloaded, never held in
memory. Child rows (line items) carry ``__parentId`` and are shuffled within small windows,
so some children arrive before their parent, which Shopify permits and clients must handle.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    OperationDefinitionNode,
    SelectionSetNode,
    parse,
    validate,
    value_from_ast_untyped,
)

from athos_identity.sandbox.data import RecordStore
from athos_identity.sandbox.shopify import nodes
from athos_identity.sandbox.shopify.graphql import (
    SCHEMA,
    Context,
    CostCalculator,
    SearchFilter,
    ordered_records,
    orders_cutoff,
)
from athos_identity.sandbox.shopify.store import ShopifyShop

SHUFFLE_WINDOW_ROOTS = 4
MIN_RUNNING_SECONDS = 0.2  # real seconds: long enough for a poller to see RUNNING
ROOT_SCOPES = {"customers": "read_customers", "orders": "read_orders"}


@dataclass
class BulkOperation:
    number: int
    query: str
    root_field: str
    node_selection: SelectionSetNode | None
    fragments: dict[str, FragmentDefinitionNode]
    search: SearchFilter
    sort_key: str
    min_created: int | None
    snapshot: RecordStore[Any]
    created_at: float
    file_token: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    status: str = "CREATED"
    error_code: str | None = None
    completed_at: float | None = None
    object_count: int = 0
    root_object_count: int = 0
    partial_limit: int | None = None  # FAILED exports keep this many root objects
    has_children: bool = False

    @property
    def gid(self) -> str:
        return nodes.gid("BulkOperation", self.number)

    def download_path(self, shop: ShopifyShop, *, partial: bool = False) -> str:
        kind = "partial" if partial else "results"
        return f"/shopify/{shop.domain}/bulk/{self.number}/{kind}.jsonl?token={self.file_token}"

    def node(self, shop: ShopifyShop, base_url: str) -> dict[str, Any]:
        finished = self.status == "COMPLETED" and self.object_count > 0
        failed_with_data = self.status == "FAILED" and self.partial_limit
        return {
            "id": self.gid,
            "status": self.status,
            "errorCode": self.error_code,
            "createdAt": nodes.iso(self.created_at),
            "completedAt": nodes.iso(self.completed_at) if self.completed_at else None,
            "objectCount": str(self.object_count),
            "rootObjectCount": str(self.root_object_count),
            "fileSize": None,
            # Shopify gives no url when the export found nothing.
            "url": base_url + self.download_path(shop) if finished else None,
            "partialDataUrl": base_url + self.download_path(shop, partial=True)
            if failed_with_data
            else None,
            "query": self.query,
            "type": "QUERY",
        }


def _user_error(message: str, code: str = "INVALID") -> dict[str, Any]:
    return {
        "bulkOperation": None,
        "userErrors": [{"field": ["query"], "message": message, "code": code}],
    }


def _connection_node_selection(
    calculator: CostCalculator, field_node: FieldNode
) -> SelectionSetNode | None:
    for child in calculator._fields(field_node.selection_set):
        if child.name.value == "nodes":
            return child.selection_set
        if child.name.value == "edges":
            for edge_child in calculator._fields(child.selection_set):
                if edge_child.name.value == "node":
                    return edge_child.selection_set
    return None


def run_query(context: Context, query: str) -> dict[str, Any]:
    shop, state = context.shop, context.state
    running = current(context)
    if running is not None and running["status"] in ("CREATED", "RUNNING"):
        return _user_error(
            "A bulk query operation for this app and shop is already in "
            f"progress: {running['id']}.",
            "OPERATION_IN_PROGRESS",
        )
    try:
        document = parse(query)
    except GraphQLError as error:
        return _user_error(f"Invalid bulk query: {error.message}")
    errors = validate(SCHEMA, document)
    if errors:
        return _user_error(f"Invalid bulk query: {errors[0].message}")
    parsed = _root_field(document)
    if isinstance(parsed, str):
        return _user_error(parsed)
    calculator, root = parsed
    arguments = {a.name.value: value_from_ast_untyped(a.value, {}) for a in root.arguments or ()}
    root_name = root.name.value
    records = shop.data.customers if root_name == "customers" else shop.data.orders
    operation = BulkOperation(
        number=max(shop.bulk_operations, default=1000) + 1,
        query=query,
        root_field=root_name,
        node_selection=_connection_node_selection(calculator, root),
        fragments=calculator.fragments,
        search=SearchFilter(arguments.get("query")),
        sort_key=str(arguments.get("sortKey") or "ID"),
        min_created=orders_cutoff(context) if root_name == "orders" else None,
        snapshot=records.snapshot(),
        created_at=state.clock.now(),
    )
    operation.has_children = any(
        child.selection_set is not None and _is_nested_connection(child.name.value)
        for child in calculator._fields(operation.node_selection)
    )
    shop.bulk_operations[operation.number] = operation
    denied = ROOT_SCOPES[root_name] not in shop.scopes()
    fault = state.faults.take("shopify", ("bulk_fail", "bulk_stuck"), "bulk")
    task = asyncio.get_running_loop().create_task(
        _run(context, operation, denied=denied, fault=fault.kind if fault else None)
    )
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)
    return {"bulkOperation": operation.node(shop, context.base_url), "userErrors": []}


_BACKGROUND: set[asyncio.Task[None]] = set()
NESTED_CONNECTIONS = frozenset({"lineItems"})


def _is_nested_connection(name: str) -> bool:
    return name in NESTED_CONNECTIONS


def _root_field(document: DocumentNode) -> tuple[CostCalculator, FieldNode] | str:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1 or operations[0].operation.value != "query":
        return "Bulk queries must contain exactly one query operation."
    calculator = CostCalculator(document, {})
    roots = list(calculator._fields(operations[0].selection_set))
    if len(roots) != 1 or roots[0].name.value not in ROOT_SCOPES:
        return "Bulk queries must select exactly one top-level connection: customers or orders."
    return calculator, roots[0]


async def _run(
    context: Context, operation: BulkOperation, *, denied: bool, fault: str | None
) -> None:
    await asyncio.sleep(0.05)
    operation.status = "RUNNING"
    if denied:
        operation.status, operation.error_code = "FAILED", "ACCESS_DENIED"
        operation.completed_at = context.state.clock.now()
        return
    await asyncio.gather(
        asyncio.to_thread(_count_objects, context.shop, operation),
        asyncio.sleep(MIN_RUNNING_SECONDS),
    )
    if fault == "bulk_stuck":
        return  # stays RUNNING until cancelled
    operation.completed_at = context.state.clock.now()
    if fault == "bulk_fail":
        operation.status, operation.error_code = "FAILED", "INTERNAL_SERVER_ERROR"
        operation.partial_limit = operation.root_object_count // 2
        return
    operation.status = "COMPLETED"


def _count_objects(shop: ShopifyShop, operation: BulkOperation) -> None:
    """Shopify's running totals; children are only counted when they are exported."""
    for record in _records(operation):
        operation.root_object_count += 1
        operation.object_count += 1
        if operation.has_children:
            operation.object_count += len(record.lines)


def _records(operation: BulkOperation) -> Iterator[Any]:
    return ordered_records(
        operation.snapshot,
        operation.sort_key if operation.sort_key == "UPDATED_AT" else "ID",
        None,
        operation.search,
        operation.min_created,
    )


def find(context: Context, operation_id: str) -> dict[str, Any] | None:
    number = nodes.gid_number(operation_id, "BulkOperation")
    operation = context.shop.bulk_operations.get(number) if number else None
    return operation.node(context.shop, context.base_url) if operation else None


def current(context: Context) -> dict[str, Any] | None:
    operations = context.shop.bulk_operations
    if not operations:
        return None
    return operations[max(operations)].node(context.shop, context.base_url)


def cancel(context: Context, operation_id: str) -> dict[str, Any]:
    number = nodes.gid_number(operation_id, "BulkOperation")
    operation = context.shop.bulk_operations.get(number) if number else None
    if operation is None:
        return {
            "bulkOperation": None,
            "userErrors": [{"field": ["id"], "message": "Bulk operation does not exist"}],
        }
    if operation.status in ("CREATED", "RUNNING"):
        operation.status = "CANCELED"
        operation.completed_at = context.state.clock.now()
    return {"bulkOperation": operation.node(context.shop, context.base_url), "userErrors": []}


# --- JSONL ------------------------------------------------------------------------------------


class _Projector:
    def __init__(self, fragments: dict[str, FragmentDefinitionNode]) -> None:
        self._calculator = CostCalculator(DocumentNode(definitions=()), {})
        self._calculator.fragments = fragments

    def project(
        self,
        selection: SelectionSetNode | None,
        value: dict[str, Any],
        children: list[dict[str, Any]],
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for field_node in self._calculator._fields(selection):
            name = field_node.name.value
            key = field_node.alias.value if field_node.alias else name
            raw = value.get(name)
            if _is_nested_connection(name) and callable(raw):
                self._children(field_node, raw(None), value["id"], children)
                continue
            if callable(raw):
                raw = raw(None)
            if isinstance(raw, dict) and field_node.selection_set is not None:
                out[key] = self.project(field_node.selection_set, raw, children)
            else:
                out[key] = raw
        return out

    def _children(
        self,
        field_node: FieldNode,
        connection: dict[str, Any],
        parent_id: str,
        children: list[dict[str, Any]],
    ) -> None:
        selection = _connection_node_selection(self._calculator, field_node)
        for child in connection["nodes"]:
            line = self.project(selection, child, children)
            line["__parentId"] = parent_id
            children.append(line)


def jsonl_chunks(
    shop: ShopifyShop, operation: BulkOperation, *, partial: bool, seed: int
) -> Iterator[bytes]:
    """Stream the export in small windows; order inside a window is shuffled."""
    projector = _Projector(operation.fragments)
    make_node = nodes.customer_node if operation.root_field == "customers" else nodes.order_node
    limit = operation.partial_limit if partial else None
    shuffle = random.Random(f"{seed}:{operation.number}")  # noqa: S311 - reproducible order
    window: list[dict[str, Any]] = []
    roots_in_window = 0
    for index, record in enumerate(_records(operation)):
        if limit is not None and index >= limit:
            break
        children: list[dict[str, Any]] = []
        window.append(
            projector.project(operation.node_selection, make_node(record, shop), children)
        )
        window.extend(children)
        roots_in_window += 1
        if roots_in_window >= SHUFFLE_WINDOW_ROOTS:
            yield _flush(window, shuffle)
            roots_in_window = 0
    if window:
        yield _flush(window, shuffle)


def _flush(window: list[dict[str, Any]], shuffle: random.Random) -> bytes:
    shuffle.shuffle(window)
    chunk = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in window)
    window.clear()
    return chunk.encode()
