"""``deleted_snapshots``: a tombstone per snapshot record deleted (DeleteSnapshots, a failed
create), written in the same transaction, until its data is gone. Start-up cleanup may then
delete the data of a tombstoned id (a crash between the commit and the file deletion) and
quarantines only data that nothing proves deleted.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deleted_snapshots",
        sa.Column("snapshot_id", sa.String(16), primary_key=True),
        sa.Column("deleted_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("deleted_snapshots")
