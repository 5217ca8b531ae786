"""Shopify webhooks: subscriptions, signed deliveries, app/uninstalled, compliance topics.

Signature: ``X-Shopify-Hmac-Sha256`` = base64 HMAC-SHA256 of the raw body with the app's
client secret, as Shopify signs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from typing import TYPE_CHECKING, Any

from athos_identity.sandbox.data import Customer, Order, money
from athos_identity.sandbox.delivery import Delivery
from athos_identity.sandbox.shopify import nodes
from athos_identity.sandbox.shopify.store import ShopifyShop, WebhookSubscription
from athos_identity.sandbox.state import SandboxState

if TYPE_CHECKING:
    from athos_identity.sandbox.shopify.graphql import Context

RECORD_TOPICS: dict[tuple[str, str], str] = {
    ("customer", "created"): "CUSTOMERS_CREATE",
    ("customer", "updated"): "CUSTOMERS_UPDATE",
    ("customer", "deleted"): "CUSTOMERS_DELETE",
    ("order", "created"): "ORDERS_CREATE",
    ("order", "updated"): "ORDERS_UPDATED",
    ("order", "deleted"): "ORDERS_DELETE",
}
COMPLIANCE_TOPICS = ("customers/data_request", "customers/redact", "shop/redact")


def sign_body(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def _subscription_node(subscription: WebhookSubscription) -> dict[str, Any]:
    return {
        "id": subscription.gid,
        "topic": subscription.topic,
        "uri": subscription.uri,
        "callbackUrl": subscription.uri,
        "format": "JSON",
        "createdAt": nodes.iso(subscription.created_at),
    }


def subscriptions(context: Context, first: int | None) -> dict[str, Any]:
    found = list(context.shop.webhooks.values())[: first or 50]
    return nodes.connection(
        [_subscription_node(s) for s in found],
        [nodes.encode_cursor({"id": s.id}) for s in found],
        False,
        False,
    )


def create_subscription(context: Context, topic: str, spec: dict[str, Any]) -> dict[str, Any]:
    uri = spec.get("uri") or spec.get("callbackUrl")
    if not isinstance(uri, str) or not uri.startswith(("http://", "https://")):
        return {
            "webhookSubscription": None,
            "userErrors": [
                {"field": ["webhookSubscription", "callbackUrl"], "message": "Address is invalid"}
            ],
        }
    shop = context.shop
    if any(s.topic == topic and s.uri == uri for s in shop.webhooks.values()):
        return {
            "webhookSubscription": None,
            "userErrors": [
                {
                    "field": ["webhookSubscription", "callbackUrl"],
                    "message": "Address for this topic has already been taken",
                }
            ],
        }
    subscription = WebhookSubscription(
        shop.next_webhook_id, topic, uri, int(context.state.clock.now())
    )
    shop.webhooks[subscription.id] = subscription
    shop.next_webhook_id += 1
    return {"webhookSubscription": _subscription_node(subscription), "userErrors": []}


def delete_subscription(context: Context, subscription_id: str) -> dict[str, Any]:
    number = nodes.gid_number(subscription_id, "WebhookSubscription")
    if number is None or context.shop.webhooks.pop(number, None) is None:
        return {
            "deletedWebhookSubscriptionId": None,
            "userErrors": [{"field": ["id"], "message": "Webhook subscription does not exist"}],
        }
    return {"deletedWebhookSubscriptionId": subscription_id, "userErrors": []}


def send_signed(
    state: SandboxState, shop: ShopifyShop, topic: str, url: str, payload: dict[str, Any]
) -> Delivery:
    body = json.dumps(payload, ensure_ascii=False)
    webhook_id = str(uuid.uuid4())
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": sign_body(body.encode(), state.config.shopify_client_secret),
        "X-Shopify-Shop-Domain": shop.domain,
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Event-Id": str(uuid.uuid4()),
        "X-Shopify-Triggered-At": state.clock.now_datetime()
        .isoformat(timespec="microseconds")
        .replace("+00:00", "Z"),
        "X-Shopify-API-Version": state.config.api_version,
    }
    delivery = Delivery(webhook_id, "shopify", topic, url, headers, body)
    state.dispatcher.send(delivery)
    return delivery


def _fire(state: SandboxState, shop: ShopifyShop, enum_topic: str, payload: dict[str, Any]) -> int:
    sent = 0
    for subscription in list(shop.webhooks.values()):
        if subscription.topic == enum_topic:
            send_signed(state, shop, subscription.header_topic, subscription.uri, payload)
            sent += 1
    return sent


def _rest_time(seconds: int) -> str:
    return nodes.iso(seconds).replace("Z", "+00:00")


def customer_payload(customer: Customer) -> dict[str, Any]:
    return {
        "id": customer.id,
        "admin_graphql_api_id": nodes.gid("Customer", customer.id),
        "email": customer.email,
        "phone": customer.phone,
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "created_at": _rest_time(customer.created_at),
        "updated_at": _rest_time(customer.updated_at),
        "default_address": None
        if customer.address_phone is None
        else {"phone": customer.address_phone, "default": True},
    }


def order_payload(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "admin_graphql_api_id": nodes.gid("Order", order.id),
        "name": f"#{order.number}",
        "email": order.email,
        "phone": order.phone,
        "created_at": _rest_time(order.created_at),
        "updated_at": _rest_time(order.updated_at),
        "currency": order.currency,
        "total_price": money(order.total_cents),
        "financial_status": order.financial_status.lower(),
        "customer": None
        if order.customer_id is None
        else {
            "id": order.customer_id,
            "admin_graphql_api_id": nodes.gid("Customer", order.customer_id),
        },
        "billing_address": {"phone": order.phone},
        "line_items": [
            {
                "id": line.id,
                "product_id": line.product_id,
                "variant_id": line.variant_id,
                "sku": line.sku,
                "title": line.title,
                "quantity": line.quantity,
                "price": money(line.unit_price_cents),
            }
            for line in order.lines
        ],
    }


def notify_record_change(
    state: SandboxState, shop: ShopifyShop, kind: str, action: str, record: Customer | Order | int
) -> int:
    if isinstance(record, int):
        payload: dict[str, Any] = {"id": record}
    elif isinstance(record, Customer):
        payload = customer_payload(record)
    else:
        payload = order_payload(record)
    return _fire(state, shop, RECORD_TOPICS[(kind, action)], payload)


def uninstall_app(state: SandboxState, shop: ShopifyShop) -> int:
    """app/uninstalled goes out first (subscriptions die with the installation)."""
    payload = {
        "id": shop.shop_id,
        "name": shop.name,
        "email": f"owner@{shop.name}.example",
        "domain": shop.domain,
        "myshopify_domain": shop.domain,
        "country_code": shop.data.country,
        "currency": shop.data.currency,
        "plan_name": shop.plan,
    }
    sent = _fire(state, shop, "APP_UNINSTALLED", payload)
    shop.uninstall()
    return sent


def compliance_payload(
    state: SandboxState,
    shop: ShopifyShop,
    topic: str,
    customer_id: int | None,
    order_ids: list[int] | None,
) -> dict[str, Any]:
    """Shopify's documented shapes for the three mandatory compliance topics."""
    base: dict[str, Any] = {"shop_id": shop.shop_id, "shop_domain": shop.domain}
    if topic == "shop/redact":
        return base
    customer = shop.data.customers.get(customer_id) if customer_id is not None else None
    if customer is None:
        raise LookupError(f"no customer {customer_id}")
    if order_ids is None:
        order_ids = [o.id for o in shop.data.orders.iter_by_id() if o.customer_id == customer.id]
    person = {"id": customer.id, "email": customer.email, "phone": customer.phone}
    if topic == "customers/redact":
        return {**base, "customer": person, "orders_to_redact": order_ids}
    return {
        **base,
        "orders_requested": order_ids,
        "customer": person,
        "data_request": {"id": 9_000 + customer.id % 1000},
    }
