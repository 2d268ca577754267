"""Disks become rows of their own: ``disks`` holds every disk (system or data, attached or
not) with its size and its own operation lock (``op_job``), so data disks and disk backups
need no instance columns. Each instance's system disk moves there without loss; the
instance columns ``disk_id``, ``disk_size_gb`` and ``disk_job`` go. Jobs name the disk they
work on (``jobs.disk_id``) and need not belong to an instance (``instance_id`` nullable).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_SYSTEM = sa.text("disk_usage = 'SYSTEM_DISK'")
_DISK_JOBS = "('create_snapshot', 'apply_snapshot')"


def upgrade() -> None:
    op.create_table(
        "disks",
        sa.Column("disk_id", sa.String(16), primary_key=True),
        sa.Column(
            "account_id",
            sa.Integer,
            sa.ForeignKey("accounts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("zone", sa.String(40), nullable=False),
        sa.Column("instance_id", sa.String(16), nullable=True),
        sa.Column("disk_usage", sa.String(12), nullable=False),
        sa.Column("size_gb", sa.Integer, nullable=False),
        sa.Column("op_job", sa.Integer, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_disks_instance", "disks", ["instance_id", "disk_usage"])
    op.create_index(
        "ux_disks_system_disk",
        "disks",
        ["instance_id"],
        unique=True,
        sqlite_where=_SYSTEM,
        postgresql_where=_SYSTEM,
    )
    op.execute(
        "INSERT INTO disks (disk_id, account_id, region, zone, instance_id, disk_usage,"
        " size_gb, op_job, created_at)"
        " SELECT disk_id, account_id, region, zone, instance_id, 'SYSTEM_DISK',"
        " disk_size_gb, disk_job, created_at FROM instances"
    )
    # SQLite cannot drop a UNIQUE column in place: batch mode rebuilds the table (instances
    # carries no triggers); PostgreSQL drops the columns directly.
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("disk_job")
        batch.drop_column("disk_size_gb")
        batch.drop_column("disk_id")

    op.add_column("jobs", sa.Column("disk_id", sa.String(16), nullable=True))
    op.execute(
        "UPDATE jobs SET disk_id = (SELECT disks.disk_id FROM disks"
        " WHERE disks.instance_id = jobs.instance_id AND disks.disk_usage = 'SYSTEM_DISK')"
        f" WHERE kind IN {_DISK_JOBS}"
    )
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("instance_id", existing_type=sa.String(16), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM jobs WHERE instance_id IS NULL")
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("instance_id", existing_type=sa.String(16), nullable=False)
        batch.drop_column("disk_id")
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("disk_id", sa.String(16), nullable=True))
        batch.add_column(sa.Column("disk_size_gb", sa.Integer, nullable=True))
        batch.add_column(sa.Column("disk_job", sa.Integer, nullable=True))
    for column, source in (
        ("disk_id", "disk_id"),
        ("disk_size_gb", "size_gb"),
        ("disk_job", "op_job"),
    ):
        op.execute(
            f"UPDATE instances SET {column} = (SELECT disks.{source} FROM disks"
            " WHERE disks.instance_id = instances.instance_id"
            " AND disks.disk_usage = 'SYSTEM_DISK')"
        )
    with op.batch_alter_table("instances") as batch:
        batch.alter_column("disk_id", existing_type=sa.String(16), nullable=False)
        batch.alter_column("disk_size_gb", existing_type=sa.Integer, nullable=False)
        batch.create_unique_constraint("uq_instances_disk_id", ["disk_id"])
    op.drop_table("disks")
