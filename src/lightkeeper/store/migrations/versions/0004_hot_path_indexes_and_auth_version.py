"""Indexes that give DescribeSnapshots/DescribeInstances their whole ORDER BY from an index,
and ``auth_version``: a counter every change to credentials bumps (SQLite triggers), so the
API front end may cache key lookups and still see a disabled key at once, across processes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Every table a ``find_key`` answer is built from.
AUTH_TABLES = ("accounts", "users", "api_keys", "policies", "sessions")


def upgrade() -> None:
    op.drop_index("ix_snapshots_account_region_created", table_name="snapshots")
    op.create_index(
        "ix_snapshots_account_region_created",
        "snapshots",
        ["account_id", "region", "created_at", "snapshot_id"],
    )
    # A filter on one instance or disk: the planner must prefer these to the index above (it
    # has no statistics), so they lead with the filtered column and carry the rest.
    for column in ("instance", "disk"):
        op.drop_index(f"ix_snapshots_{column}", table_name="snapshots")
        op.create_index(
            f"ix_snapshots_{column}",
            "snapshots",
            [f"{column}_id", "account_id", "region", "created_at", "snapshot_id"],
        )
    op.drop_index("ix_instances_account_region_created", table_name="instances")
    op.create_index(
        "ix_instances_account_region_created",
        "instances",
        ["account_id", "region", "created_at", "instance_id"],
    )
    # Tag filters read (key, value) -> resource_id from the index alone.
    op.drop_index("ix_tags_key_value", table_name="tags")
    op.create_index("ix_tags_key_value", "tags", ["key", "value", "resource_id"])
    op.create_table(
        "auth_version",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.execute("INSERT INTO auth_version (id, version) VALUES (1, 0)")
    if op.get_bind().dialect.name == "sqlite":
        for table in AUTH_TABLES:
            for event in ("INSERT", "UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER auth_version_{table}_{event.lower()} AFTER {event} ON {table} "
                    "BEGIN UPDATE auth_version SET version = version + 1 WHERE id = 1; END"
                )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in AUTH_TABLES:
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS auth_version_{table}_{event}")
    op.drop_table("auth_version")
    op.drop_index("ix_tags_key_value", table_name="tags")
    op.create_index("ix_tags_key_value", "tags", ["key", "value"])
    op.drop_index("ix_instances_account_region_created", table_name="instances")
    op.create_index(
        "ix_instances_account_region_created", "instances", ["account_id", "region", "created_at"]
    )
    for column in ("instance", "disk"):
        op.drop_index(f"ix_snapshots_{column}", table_name="snapshots")
        op.create_index(f"ix_snapshots_{column}", "snapshots", [f"{column}_id"])
    op.drop_index("ix_snapshots_account_region_created", table_name="snapshots")
    op.create_index(
        "ix_snapshots_account_region_created", "snapshots", ["account_id", "region", "created_at"]
    )
