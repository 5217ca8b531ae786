"""DDL helpers for migrations: every tenant table gets the same FORCE'd RLS policy."""

from __future__ import annotations

from alembic import op

CURRENT_TENANT_FUNCTION = """
CREATE OR REPLACE FUNCTION athos_current_tenant() RETURNS uuid
LANGUAGE sql STABLE AS $$ SELECT nullif(current_setting('app.tenant_id', true), '')::uuid $$
"""


def enable_tenant_isolation(table: str, app_role: str) -> None:
    """Confine `table` to the transaction's tenant, for the owner too, and grant it to the app."""
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {table} "
        "USING (tenant_id = athos_current_tenant()) "
        "WITH CHECK (tenant_id = athos_current_tenant())"
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {app_role}")


def app_role() -> str:
    """The application role named in the running Alembic configuration."""
    return str(op.get_context().config.attributes["app_role"])  # type: ignore[union-attr]
