"""Blueprints, instances with their system disks, snapshots, tags and durable jobs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _fk(target: str) -> sa.ForeignKey:
    return sa.ForeignKey(target, ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "blueprints",
        sa.Column("blueprint_id", sa.String(16), primary_key=True),
        sa.Column("account_id", sa.Integer, _fk("accounts.id"), nullable=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("os_name", sa.String(64), nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("platform_type", sa.String(32), nullable=False),
        sa.Column("image_path", sa.String(1024), nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "instances",
        sa.Column("instance_id", sa.String(16), primary_key=True),
        sa.Column("account_id", sa.Integer, _fk("accounts.id"), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("zone", sa.String(40), nullable=False),
        sa.Column("name", sa.String(60), nullable=False),
        sa.Column("bundle_id", sa.String(64), nullable=False),
        sa.Column("bundle_type", sa.String(32), nullable=False),
        sa.Column("cpu", sa.Integer, nullable=False),
        sa.Column("memory", sa.Integer, nullable=False),
        sa.Column("blueprint_id", sa.String(16), nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("restrict_state", sa.String(24), nullable=False),
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("private_ip", sa.String(15), nullable=False),
        sa.Column("public_ip", sa.String(15), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("expired_at", sa.DateTime, nullable=False),
        sa.Column("latest_operation", sa.String(40), nullable=True),
        sa.Column("latest_operation_state", sa.String(12), nullable=True),
        sa.Column("latest_operation_request_id", sa.String(36), nullable=True),
        sa.Column("latest_operation_started_at", sa.DateTime, nullable=True),
        sa.Column("disk_id", sa.String(16), nullable=False, unique=True),
        sa.Column("disk_size_gb", sa.Integer, nullable=False),
        sa.Column("op_job", sa.Integer, nullable=True),
        sa.Column("disk_job", sa.Integer, nullable=True),
    )
    op.create_index(
        "ix_instances_account_region_created", "instances", ["account_id", "region", "created_at"]
    )
    op.create_table(
        "snapshots",
        sa.Column("snapshot_id", sa.String(16), primary_key=True),
        sa.Column("account_id", sa.Integer, _fk("accounts.id"), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("instance_id", sa.String(16), nullable=False),
        sa.Column("disk_id", sa.String(16), nullable=False),
        sa.Column("disk_size_gb", sa.Integer, nullable=False),
        sa.Column("name", sa.String(60), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("percent", sa.Integer, nullable=False),
        sa.Column("latest_operation", sa.String(40), nullable=True),
        sa.Column("latest_operation_state", sa.String(12), nullable=True),
        sa.Column("latest_operation_request_id", sa.String(36), nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("checksum", sa.String(80), nullable=True),
        sa.Column("corrupt", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index(
        "ix_snapshots_account_region_created", "snapshots", ["account_id", "region", "created_at"]
    )
    op.create_index("ix_snapshots_disk", "snapshots", ["disk_id"])
    op.create_index("ix_snapshots_instance", "snapshots", ["instance_id"])
    op.create_table(
        "tags",
        sa.Column("resource_id", sa.String(16), primary_key=True),
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("value", sa.String(256), nullable=False),
    )
    op.create_index("ix_tags_key_value", "tags", ["key", "value"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("account_id", sa.Integer, nullable=False),
        sa.Column("instance_id", sa.String(16), nullable=False),
        sa.Column("snapshot_id", sa.String(16), nullable=True),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("params", sa.String(1024), nullable=False, server_default="{}"),
        sa.Column("message", sa.String(1024), nullable=True),
        sa.Column("owner", sa.String(128), nullable=True),
        sa.Column("lease_until", sa.Float, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=True),
        sa.Column("finished_at", sa.DateTime, nullable=True),
    )
    op.create_index("ix_jobs_state", "jobs", ["state"])
    op.create_index("ix_jobs_instance", "jobs", ["instance_id"])


def downgrade() -> None:
    for table in ("jobs", "tags", "snapshots", "instances", "blueprints"):
        op.drop_table(table)
