"""CAM policies attached to sub-users, and temporary credentials (STS sessions).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _fk(target: str) -> sa.ForeignKey:
    return sa.ForeignKey(target, ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "policies",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, _fk("users.id"), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("document", sa.String(65536), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("user_id", "name"),
    )
    op.create_table(
        "sessions",
        sa.Column("tmp_secret_id", sa.String(64), primary_key=True),
        sa.Column("tmp_secret_key", sa.String(64), nullable=False),
        sa.Column("token", sa.String(128), nullable=False),
        sa.Column("account_id", sa.Integer, _fk("accounts.id"), nullable=False),
        sa.Column("user_id", sa.Integer, _fk("users.id"), nullable=True),
        sa.Column("policy", sa.String(65536), nullable=True),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sessions")
    op.drop_table("policies")
