"""Connectors and the identity link store.

Every link belongs to a connector: a platform store, or the tenant's `api` connector that
the generic ingest endpoint writes through.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from athos_identity.kit.rls import app_role, enable_tenant_isolation

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    role = app_role()
    op.create_table(
        "connectors",
        sa.Column("tenant_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("platform", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False, server_default=""),
        # the store on its platform: Shopify's {shop}.myshopify.com, BigCommerce's store hash
        sa.Column("store", sa.Text(), nullable=True),
        sa.Column("state", sa.Text(), nullable=False, server_default="not_granted"),
        sa.Column("scopes", pg.ARRAY(sa.Text()), nullable=False, server_default="{}"),
        sa.Column("store_country", sa.String(2), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.tenant_id"], ondelete="CASCADE"),
        sa.CheckConstraint("platform IN ('shopify', 'bigcommerce', 'api')", name="platform_known"),
        sa.CheckConstraint(
            "state IN ('not_granted', 'granted', 'needs_reauthorization', 'revoked')",
            name="state_known",
        ),
    )
    # One connector per store and tenant; one `api` connector per tenant (store IS NULL).
    op.create_index(
        "connectors_store_key",
        "connectors",
        ["tenant_id", "platform", sa.text("coalesce(store, '')")],
        unique=True,
    )
    enable_tenant_isolation("connectors", role)

    op.create_table(
        "identity_links",
        sa.Column("tenant_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("kind", sa.SmallInteger(), nullable=False),  # 1 e-mail, 2 phone
        sa.Column("key", sa.LargeBinary(32), nullable=False),  # HMAC(K_tenant, SHA-256(normalized))
        sa.Column("key_version", sa.SmallInteger(), nullable=False),
        sa.Column("connector_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "key", "kind", "key_version", "connector_id", "customer_id"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "connector_id"],
            ["connectors.tenant_id", "connectors.id"],
            ondelete="CASCADE",
        ),
        sa.CheckConstraint("kind IN (1, 2)", name="kind_known"),
        sa.CheckConstraint("octet_length(key) = 32", name="key_is_32_bytes"),
    )
    op.create_index(
        "identity_links_customer", "identity_links", ["tenant_id", "connector_id", "customer_id"]
    )
    enable_tenant_isolation("identity_links", role)
    # Look-ups in one round trip: scope the statement to the tenant, then read. SECURITY
    # INVOKER (the default), so row-level security still applies to the caller's role.
    op.execute(
        """
        CREATE FUNCTION athos_find_links(p_tenant uuid, p_keys bytea[])
        RETURNS TABLE (kind smallint, key bytea, connector_id uuid, customer_id text)
        LANGUAGE plpgsql AS $$
        BEGIN
          PERFORM set_config('app.tenant_id', p_tenant::text, true);
          RETURN QUERY
            SELECT l.kind, l.key, l.connector_id, l.customer_id FROM identity_links l
            WHERE l.tenant_id = p_tenant AND l.key = ANY(p_keys)
            ORDER BY l.connector_id, l.customer_id;
        END $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION athos_find_links(uuid, bytea[])")
    op.drop_table("identity_links")
    op.drop_table("connectors")
