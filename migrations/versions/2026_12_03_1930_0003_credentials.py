"""Platform credentials (encrypted), connector warnings and webhook secrets, webhook deliveries.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from athos_identity.kit.rls import app_role, enable_tenant_isolation

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    role = app_role()
    op.create_table(
        "connector_credentials",
        sa.Column("tenant_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("connector_id", pg.UUID(as_uuid=True), nullable=False),
        # bigcommerce_token | shopify_access | shopify_refresh
        sa.Column("kind", sa.Text(), nullable=False),
        # kit.crypto format: format byte, key version, nonce, AES-GCM sealed secret
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("key_version", sa.SmallInteger(), nullable=False),
        sa.Column("hint", sa.Text(), nullable=False, server_default=""),  # "…" + last 4
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("tenant_id", "connector_id", "kind"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "connector_id"],
            ["connectors.tenant_id", "connectors.id"],
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "kind IN ('bigcommerce_token', 'shopify_access', 'shopify_refresh')",
            name="credential_kind_known",
        ),
        sa.CheckConstraint("char_length(hint) <= 5", name="hint_is_short"),
    )
    enable_tenant_isolation("connector_credentials", role)

    # SHA-256 of the per-connector secret BigCommerce sends back in a header with each hook.
    op.add_column("connectors", sa.Column("webhook_secret_hash", sa.LargeBinary(32)))
    # Non-blocking problems to show in the console (optional scopes missing, hooks not set).
    op.add_column(
        "connectors",
        sa.Column("warnings", pg.ARRAY(sa.Text()), nullable=False, server_default="{}"),
    )

    op.create_table(
        "webhook_deliveries",
        sa.Column("tenant_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("connector_id", pg.UUID(as_uuid=True), nullable=False),
        # the platform's delivery id: BigCommerce's payload `hash`, Shopify's X-Shopify-Webhook-Id
        sa.Column("delivery_key", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),  # e.g. store/customer/updated
        sa.Column("resource_type", sa.Text(), nullable=True),  # customer | order ...
        sa.Column("resource_id", sa.Text(), nullable=True),  # the platform's id; no PII
        sa.Column(
            "received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        # set by the pull jobs once the resource was fetched
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "connector_id", "delivery_key"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "connector_id"],
            ["connectors.tenant_id", "connectors.id"],
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "webhook_deliveries_pending",
        "webhook_deliveries",
        ["tenant_id", "connector_id", "received_at"],
        postgresql_where=sa.text("processed_at IS NULL"),
    )
    enable_tenant_isolation("webhook_deliveries", role)


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_column("connectors", "warnings")
    op.drop_column("connectors", "webhook_secret_hash")
    op.drop_table("connector_credentials")
