"""``rate_counts`` and ``replay_nonces``: the rate-limit counts and the v1 nonces the nodes
of one PostgreSQL database share (store/shared.py). Created on SQLite too (one schema), where
a single node counts in memory and leaves them empty.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_counts",
        sa.Column("second", sa.Integer, primary_key=True),
        sa.Column("action", sa.String(64), primary_key=True),
        sa.Column("region", sa.String(32), primary_key=True),
        sa.Column("principal", sa.String(160), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
    )
    op.create_table(
        "replay_nonces",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_replay_nonces_expires_at", "replay_nonces", ["expires_at"])


def downgrade() -> None:
    op.drop_table("replay_nonces")
    op.drop_table("rate_counts")
