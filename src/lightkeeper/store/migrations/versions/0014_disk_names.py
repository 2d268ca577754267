"""``disks.name``: a disk's DiskName (DescribeDisks, ModifyDisksAttribute). NULL for the
system disks made before it: their name is derived from their instance (docs/behaviour.md).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("disks") as batch:
        batch.add_column(sa.Column("name", sa.String(60), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("disks") as batch:
        batch.drop_column("name")
