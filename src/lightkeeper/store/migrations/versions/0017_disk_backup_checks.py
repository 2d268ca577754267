"""``disk_backups.corrupt``: the scrubber reads backups back as it reads snapshots (their
last checks go to ``snapshot_checks``, keyed by the backup's id), and a backup whose data
failed its checksum is marked, as a snapshot is, so that ApplyDiskBackup refuses it.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("disk_backups") as batch:
        batch.add_column(sa.Column("corrupt", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("disk_backups") as batch:
        batch.drop_column("corrupt")
