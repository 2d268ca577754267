"""Placement: ``instances.node`` (the node running it), ``disks.pool`` and ``nodes.pool``
(the storage pool holding a disk, the one a node reaches), ``jobs.need_node`` and
``jobs.need_pool`` (who may claim a job). All NULL on existing rows: not placed, in no
particular pool, claimable by any node, as before.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

COLUMNS = (
    ("instances", "node", 64),
    ("disks", "pool", 16),
    ("nodes", "pool", 16),
    ("jobs", "need_node", 64),
    ("jobs", "need_pool", 16),
)


def upgrade() -> None:
    for table, column, length in COLUMNS:
        op.add_column(table, sa.Column(column, sa.String(length), nullable=True))


def downgrade() -> None:
    for table, column, _ in reversed(COLUMNS):
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column)
