"""What data disks need of a disk row: its type, state and latest operation, when it expires,
its renewal flag and its disk-backup quota. NULL (0 for the quota) for the system disks, whose
values follow their instance (views.disk_view).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

COLUMNS = (
    ("disk_type", sa.String(16)),
    ("state", sa.String(16)),
    ("latest_operation", sa.String(40)),
    ("latest_operation_state", sa.String(12)),
    ("latest_operation_request_id", sa.String(36)),
    ("expired_at", sa.DateTime),
    ("renew_flag", sa.String(40)),
)


def upgrade() -> None:
    with op.batch_alter_table("disks") as batch:
        for name, kind in COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))
        batch.add_column(sa.Column("backup_quota", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("disks") as batch:
        batch.drop_column("backup_quota")
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
