"""Audit log: who did what to which object, when (counts only).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from athos_identity.kit.rls import app_role, enable_tenant_isolation

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UUID = pg.UUID(as_uuid=True)


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("id", UUID, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("key_id", UUID, nullable=True),  # null: a platform callback, a scheduled job
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("target_id", sa.Text(), nullable=True),
        sa.Column("request_id", sa.Text(), nullable=True),
        sa.Column("details", pg.JSONB(), nullable=False, server_default="{}"),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.tenant_id"], ondelete="CASCADE"),
    )
    op.create_index("audit_events_newest", "audit_events", ["tenant_id", "at", "id"])
    enable_tenant_isolation("audit_events", app_role())


def downgrade() -> None:
    op.drop_table("audit_events")
