"""Session tokens kept only as their SHA-256 (a token is only ever compared); the admin's
``pending_instances`` reservations (a disk copied outside any transaction, see
lighthouse/admin.py); and ``store_probe``, the row the health check writes to find out
whether the database takes writes again (store/health.py).

The TmpSecretKey stays as it is: HMAC verification needs the key itself.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _drop_column(table: str, column: str) -> None:
    """SQLite's own DROP COLUMN keeps the table (and the auth_version triggers on it, 0004);
    Alembic's batch mode would rebuild the table without them."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    else:
        op.drop_column(table, column)


def upgrade() -> None:
    op.add_column(
        "sessions", sa.Column("token_sha256", sa.String(64), nullable=False, server_default="")
    )
    conn = op.get_bind()
    for secret_id, token in conn.execute(sa.text("SELECT tmp_secret_id, token FROM sessions")):
        conn.execute(
            sa.text("UPDATE sessions SET token_sha256 = :digest WHERE tmp_secret_id = :id"),
            {"digest": hashlib.sha256(token.encode()).hexdigest(), "id": secret_id},
        )
    _drop_column("sessions", "token")
    op.create_index("ix_sessions_expires_at", "sessions", ["expires_at"])
    op.create_table(
        "pending_instances",
        sa.Column("instance_id", sa.String(16), primary_key=True),
        sa.Column("disk_id", sa.String(16), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "store_probe",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("probed_at", sa.Float, nullable=False),
    )
    op.execute("INSERT INTO store_probe (id, probed_at) VALUES (1, 0)")


def downgrade() -> None:
    """Plaintext tokens cannot be recovered from their hashes: sessions are dropped (every
    temporary credential must be issued again)."""
    op.drop_table("store_probe")
    op.drop_table("pending_instances")
    op.drop_index("ix_sessions_expires_at", table_name="sessions")
    op.execute("DELETE FROM sessions")
    op.add_column("sessions", sa.Column("token", sa.String(128), nullable=False, server_default=""))
    _drop_column("sessions", "token_sha256")
