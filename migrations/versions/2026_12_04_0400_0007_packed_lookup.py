"""Look-ups take their keys packed in one bytea and return connector ids as text.

A 1,000-key look-up spent more time in psycopg dumping a Python list as a bytea[] than
PostgreSQL spent answering it (bench/lookup.py); one 32,000-byte value costs nothing to
send, and the text ids need no UUID object per row on the way back.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SECURITY INVOKER (the default), so row-level security still applies to the caller.
    op.execute(
        """
        CREATE FUNCTION athos_find_links_packed(p_tenant uuid, p_keys bytea)
        RETURNS TABLE (kind smallint, key bytea, connector_id text, customer_id text)
        LANGUAGE plpgsql AS $$
        BEGIN
          IF octet_length(p_keys) % 32 <> 0 THEN
            RAISE EXCEPTION 'packed keys must be a multiple of 32 bytes';
          END IF;
          PERFORM set_config('app.tenant_id', p_tenant::text, true);
          RETURN QUERY
            SELECT l.kind, l.key, l.connector_id::text, l.customer_id FROM identity_links l
            WHERE l.tenant_id = p_tenant AND l.key = ANY(ARRAY(
              SELECT substring(p_keys FROM i * 32 + 1 FOR 32)
              FROM generate_series(0, octet_length(p_keys) / 32 - 1) AS i))
            ORDER BY l.connector_id, l.customer_id;
        END $$
        """
    )
    op.execute("DROP FUNCTION athos_find_links(uuid, bytea[])")


def downgrade() -> None:
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
    op.execute("DROP FUNCTION athos_find_links_packed(uuid, bytea)")
