"""``auth_version`` on PostgreSQL too: one statement-level trigger per credential table bumps
it, as the SQLite triggers of 0004 do, so every node's key cache (api/auth.py) sees a key
disabled through any node at its next request. A no-op on SQLite.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

AUTH_TABLES = ("accounts", "users", "api_keys", "policies", "sessions")  # as in 0004
FUNCTION = "lightkeeper_bump_auth_version"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"CREATE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN UPDATE auth_version SET version = version + 1 WHERE id = 1; RETURN NULL; END $$"
    )
    for table in AUTH_TABLES:
        op.execute(
            f"CREATE TRIGGER auth_version_{table} AFTER INSERT OR UPDATE OR DELETE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in AUTH_TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS auth_version_{table} ON {table}")
    op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")
