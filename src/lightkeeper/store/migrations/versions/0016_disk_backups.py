"""``disk_backups``: data disks' backups (CreateDiskBackup...), apart from ``snapshots``:
their own states (NORMAL, CREATING, ROLLBACKING, DELETING), no instance of their own, and
the hot snapshot queries never see them. Their data is a storage snapshot of the disk.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "disk_backups",
        sa.Column("disk_backup_id", sa.String(16), primary_key=True),
        sa.Column(
            "account_id",
            sa.Integer,
            sa.ForeignKey("accounts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("disk_id", sa.String(16), nullable=False),
        sa.Column("disk_size_gb", sa.Integer, nullable=False),
        sa.Column("name", sa.String(90), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("percent", sa.Integer, nullable=False),
        sa.Column("latest_operation", sa.String(40), nullable=True),
        sa.Column("latest_operation_state", sa.String(12), nullable=True),
        sa.Column("latest_operation_request_id", sa.String(36), nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("checksum", sa.String(80), nullable=True),
    )
    op.create_index("ix_disk_backups_disk", "disk_backups", ["disk_id"])
    op.create_index(
        "ix_disk_backups_account_region_created",
        "disk_backups",
        ["account_id", "region", "created_at", "disk_backup_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_disk_backups_account_region_created", "disk_backups")
    op.drop_index("ix_disk_backups_disk", "disk_backups")
    op.drop_table("disk_backups")
