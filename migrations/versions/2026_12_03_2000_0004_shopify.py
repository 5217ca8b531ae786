"""Shopify: single-use OAuth states, privacy compliance requests, webhook routing by shop.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from athos_identity.kit.rls import app_role, enable_tenant_isolation

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    role = app_role()
    # One row per Grant Access click. The state token itself is never stored, only its
    # SHA-256; the tenant id travels in the token so the (unauthenticated) callback can
    # scope its transaction before it looks the hash up.
    op.create_table(
        "shopify_oauth_states",
        sa.Column("tenant_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("state_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("connector_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("shop", sa.Text(), nullable=False),  # the shop the grant was started for
        sa.Column("scopes", pg.ARRAY(sa.Text()), nullable=False),  # requested
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("tenant_id", "state_hash"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "connector_id"],
            ["connectors.tenant_id", "connectors.id"],
            ondelete="CASCADE",
        ),
        sa.CheckConstraint("octet_length(state_hash) = 32", name="state_hash_is_32_bytes"),
    )
    enable_tenant_isolation("shopify_oauth_states", role)

    # customers/data_request, customers/redact, shop/redact: what Shopify asked and what we
    # did. Ids and counts only, never an e-mail or phone. Not tied to the connector by a
    # foreign key on purpose: the record outlives a revocation (it is the proof of erasure).
    op.create_table(
        "shopify_compliance_requests",
        sa.Column("tenant_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("connector_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("shop", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("webhook_id", sa.Text(), nullable=False),
        sa.Column("shopify_request_id", sa.Text(), nullable=True),  # data_request.id
        sa.Column("customer_id", sa.Text(), nullable=True),
        sa.Column("order_ids", pg.ARRAY(sa.Text()), nullable=False, server_default="{}"),
        sa.Column("result", pg.JSONB(), nullable=False, server_default="{}"),
        sa.Column(
            "received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.tenant_id"], ondelete="CASCADE"),
        sa.UniqueConstraint("tenant_id", "connector_id", "webhook_id", name="compliance_once"),
        sa.CheckConstraint(
            "topic IN ('customers/data_request', 'customers/redact', 'shop/redact')",
            name="compliance_topic_known",
        ),
    )
    enable_tenant_isolation("shopify_compliance_requests", role)

    # Shopify webhooks name a shop, not a tenant. After the body's HMAC was verified, the
    # receiver sets app.shopify_shop to the shop domain and may then read the Shopify
    # connectors of that one shop (every tenant's) to route the event; it reads and writes
    # anything else only inside each tenant's own scope.
    op.execute(
        "CREATE POLICY shopify_webhook_routing ON connectors FOR SELECT "
        "USING (platform = 'shopify' "
        "AND store = nullif(current_setting('app.shopify_shop', true), ''))"
    )


def downgrade() -> None:
    op.execute("DROP POLICY shopify_webhook_routing ON connectors")
    op.drop_table("shopify_compliance_requests")
    op.drop_table("shopify_oauth_states")
