"""``snapshot_checks``: when each snapshot's data was last read back and compared with its
checksum (the scrubber, ``admin snapshot verify``), by which node, and what was found.
A table of its own so that the hot snapshot queries never read or write it.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "snapshot_checks",
        sa.Column("snapshot_id", sa.String(16), primary_key=True),
        sa.Column("verified_at", sa.DateTime, nullable=False),
        sa.Column("result", sa.String(12), nullable=False),
        sa.Column("node", sa.String(64), nullable=True),
    )
    op.create_index("ix_snapshot_checks_verified", "snapshot_checks", ["verified_at"])


def downgrade() -> None:
    op.drop_index("ix_snapshot_checks_verified", "snapshot_checks")
    op.drop_table("snapshot_checks")
