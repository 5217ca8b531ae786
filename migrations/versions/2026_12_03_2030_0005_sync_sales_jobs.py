"""Pull jobs: sync runs and cursors, known customers, sales data; the job queue's schema.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op
from procrastinate.schema import SchemaManager
from sqlalchemy.dialects import postgresql as pg

from athos_identity.kit.rls import app_role, enable_tenant_isolation

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UUID = pg.UUID(as_uuid=True)


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    ]


def _connector_fk() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", "connector_id"], ["connectors.tenant_id", "connectors.id"], ondelete="CASCADE"
    )


def upgrade() -> None:
    role = app_role()
    op.create_table(
        "sync_runs",
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("id", UUID, nullable=False),
        sa.Column("connector_id", UUID, nullable=False),
        sa.Column("mode", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False, server_default="queued"),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("stream", sa.Text(), nullable=True),  # the stream being pulled now
        sa.Column("checkpoint", pg.JSONB(), nullable=False, server_default="{}"),
        sa.Column("pages", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("customers", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("orders", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("skipped", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("deleted", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("estimated_total", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
        _connector_fk(),
        sa.CheckConstraint("mode IN ('full', 'incremental')", name="mode_known"),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name="status_known",
        ),
    )
    # At most one queued or running pull per store.
    op.create_index(
        "sync_runs_one_active",
        "sync_runs",
        ["tenant_id", "connector_id"],
        unique=True,
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )
    op.create_index("sync_runs_history", "sync_runs", ["tenant_id", "connector_id", "created_at"])
    enable_tenant_isolation("sync_runs", role)

    op.create_table(
        "sync_cursors",
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("connector_id", UUID, nullable=False),
        sa.Column("stream", sa.Text(), nullable=False),
        sa.Column("high_water", sa.DateTime(timezone=True), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("tenant_id", "connector_id", "stream"),
        _connector_fk(),
    )
    enable_tenant_isolation("sync_cursors", role)

    op.create_table(
        "customers",
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("connector_id", UUID, nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("platform_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seen_in_run", UUID, nullable=True),  # mark-and-sweep of full syncs
        *_timestamps(),
        sa.PrimaryKeyConstraint("tenant_id", "connector_id", "customer_id"),
        _connector_fk(),
    )
    enable_tenant_isolation("customers", role)

    op.create_table(
        "orders",
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("connector_id", UUID, nullable=False),
        sa.Column("order_id", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=True),  # NULL for guests
        sa.Column("email_key", sa.LargeBinary(32), nullable=True),
        sa.Column("phone_key", sa.LargeBinary(32), nullable=True),
        sa.Column("key_version", sa.SmallInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("total", sa.Numeric(18, 4), nullable=True),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("platform_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seen_in_run", UUID, nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("tenant_id", "connector_id", "order_id"),
        _connector_fk(),
    )
    op.create_index("orders_by_customer", "orders", ["tenant_id", "customer_id"])
    op.create_index("orders_by_email", "orders", ["tenant_id", "email_key"])
    op.create_index("orders_by_phone", "orders", ["tenant_id", "phone_key"])
    enable_tenant_isolation("orders", role)

    op.create_table(
        "order_lines",
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("connector_id", UUID, nullable=False),
        sa.Column("order_id", sa.Text(), nullable=False),
        sa.Column("line_id", sa.Text(), nullable=False),
        sa.Column("product_id", sa.Text(), nullable=True),
        sa.Column("variant_id", sa.Text(), nullable=True),
        sa.Column("sku", sa.Text(), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", sa.Numeric(18, 4), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "connector_id", "order_id", "line_id"),
        # Lines belong to their connector, not through a foreign key to orders: checking
        # one per inserted line cost most of a first sync's time (its cached plan was made
        # while `orders` was empty). sales.repository deletes lines with their orders.
        _connector_fk(),
    )
    enable_tenant_isolation("order_lines", role)

    # The periodic scheduler lists granted connectors of every tenant, and nothing else.
    op.execute(
        "CREATE POLICY scheduler_read ON connectors FOR SELECT"
        " USING (current_setting('app.scheduler', true) = 'on')"
    )

    # The job queue lives in the same database (DESIGN.md §8); its tables hold ids only.
    op.execute(SchemaManager.get_schema())


def downgrade() -> None:
    op.execute(
        "DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers,"
        " procrastinate_jobs, procrastinate_workers CASCADE"
    )
    op.execute(
        "DO $$ DECLARE r record; BEGIN FOR r IN SELECT p.oid::regprocedure AS f FROM pg_proc p"
        " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'"
        " AND p.proname LIKE 'procrastinate%' LOOP EXECUTE 'DROP FUNCTION ' || r.f || ' CASCADE';"
        " END LOOP; END $$"
    )
    op.execute(
        "DO $$ DECLARE r record; BEGIN FOR r IN SELECT t.typname FROM pg_type t"
        " JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'public'"
        " AND t.typname LIKE 'procrastinate%' AND t.typtype IN ('e', 'c') LOOP"
        " EXECUTE 'DROP TYPE ' || quote_ident(r.typname) || ' CASCADE'; END LOOP; END $$"
    )
    op.execute("DROP POLICY scheduler_read ON connectors")
    for table in ("order_lines", "orders", "customers", "sync_cursors", "sync_runs"):
        op.drop_table(table)
