"""The schema, as SQLAlchemy Core tables. Alembic migrations under ``migrations/`` create it."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    text,
)

metadata = MetaData()


def _fk(target: str) -> ForeignKey:
    return ForeignKey(target, ondelete="CASCADE")


accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("uin", String(20), nullable=False, unique=True),
    Column("app_id", Integer, nullable=False, unique=True),
    Column("created_at", DateTime, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", Integer, _fk("accounts.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("uin", String(20), nullable=False, unique=True),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("account_id", "name"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("secret_id", String(64), primary_key=True),
    Column("secret_key", String(64), nullable=False),
    Column("account_id", Integer, _fk("accounts.id"), nullable=False),
    Column(
        "user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True
    ),
    Column("enabled", Integer, nullable=False, default=1),
    Column("created_at", DateTime, nullable=False),
)

blueprints = Table(
    "blueprints",
    metadata,
    Column("blueprint_id", String(16), primary_key=True),
    Column("account_id", Integer, _fk("accounts.id"), nullable=True),  # NULL: public
    Column("name", String(64), nullable=False),
    Column("os_name", String(64), nullable=False),
    Column("platform", String(32), nullable=False),
    Column("platform_type", String(32), nullable=False),
    Column("image_path", String(1024), nullable=True),
    Column("created_at", DateTime, nullable=False),
)

instances = Table(
    "instances",
    metadata,
    Column("instance_id", String(16), primary_key=True),
    Column("account_id", Integer, _fk("accounts.id"), nullable=False),
    Column("region", String(32), nullable=False),
    Column("zone", String(40), nullable=False),
    Column("name", String(60), nullable=False),
    Column("bundle_id", String(64), nullable=False),
    Column("bundle_type", String(32), nullable=False),
    Column("cpu", Integer, nullable=False),
    Column("memory", Integer, nullable=False),
    Column("blueprint_id", String(16), nullable=False),
    Column("state", String(24), nullable=False),
    Column("restrict_state", String(24), nullable=False),
    Column("uuid", String(36), nullable=False),
    Column("private_ip", String(15), nullable=False),
    Column("public_ip", String(15), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("expired_at", DateTime, nullable=False),
    Column("latest_operation", String(40), nullable=True),
    Column("latest_operation_state", String(12), nullable=True),
    Column("latest_operation_request_id", String(36), nullable=True),
    Column("latest_operation_started_at", DateTime, nullable=True),
    Column("op_job", Integer, nullable=True),  # job holding the instance (power op, rollback)
    Column("node", String(64), nullable=True),  # the node running it; NULL: not placed
    Index(
        "ix_instances_account_region_created", "account_id", "region", "created_at", "instance_id"
    ),
)

# Every disk, system or data, attached to an instance or not. A disk's operation lock is its
# own ``op_job`` (a snapshot, a rollback, a backup), apart from its instance's.
disks = Table(
    "disks",
    metadata,
    Column("disk_id", String(16), primary_key=True),
    Column("account_id", Integer, _fk("accounts.id"), nullable=False),
    Column("region", String(32), nullable=False),
    Column("zone", String(40), nullable=False),
    Column("instance_id", String(16), nullable=True),  # NULL: not attached
    Column("disk_usage", String(12), nullable=False),  # SYSTEM_DISK | DATA_DISK
    Column("size_gb", Integer, nullable=False),
    Column("op_job", Integer, nullable=True),  # job holding the disk
    Column("created_at", DateTime, nullable=False),
    Column("pool", String(16), nullable=True),  # the storage pool of its data; NULL: any
    Column("name", String(60), nullable=True),  # DiskName; NULL: derived (system disks)
    # Data disks' own values (0015); NULL for system disks, which take their instance's.
    Column("disk_type", String(16), nullable=True),
    Column("state", String(16), nullable=True),
    Column("latest_operation", String(40), nullable=True),
    Column("latest_operation_state", String(12), nullable=True),
    Column("latest_operation_request_id", String(36), nullable=True),
    Column("expired_at", DateTime, nullable=True),
    Column("renew_flag", String(40), nullable=True),
    Column("backup_quota", Integer, nullable=False, server_default="0"),
    Index("ix_disks_instance", "instance_id", "disk_usage"),
    # One system disk per instance, on both engines (a partial unique index).
    Index(
        "ux_disks_system_disk",
        "instance_id",
        unique=True,
        sqlite_where=text("disk_usage = 'SYSTEM_DISK'"),
        postgresql_where=text("disk_usage = 'SYSTEM_DISK'"),
    ),
)

# A tombstone per deleted snapshot record, written in the deleting transaction and removed
# once the data is gone: what proves that data without a record may be deleted (server.py).
deleted_snapshots = Table(
    "deleted_snapshots",
    metadata,
    Column("snapshot_id", String(16), primary_key=True),
    Column("deleted_at", DateTime, nullable=False),
)

snapshots = Table(
    "snapshots",
    metadata,
    Column("snapshot_id", String(16), primary_key=True),
    Column("account_id", Integer, _fk("accounts.id"), nullable=False),
    Column("region", String(32), nullable=False),
    Column("instance_id", String(16), nullable=False),
    Column("disk_id", String(16), nullable=False),
    Column("disk_size_gb", Integer, nullable=False),
    Column("name", String(60), nullable=False),
    Column("state", String(16), nullable=False),
    Column("percent", Integer, nullable=False),
    Column("latest_operation", String(40), nullable=True),
    Column("latest_operation_state", String(12), nullable=True),
    Column("latest_operation_request_id", String(36), nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("checksum", String(80), nullable=True),
    Column("corrupt", Integer, nullable=False, server_default="0"),
    Index(
        "ix_snapshots_account_region_created", "account_id", "region", "created_at", "snapshot_id"
    ),
    Index("ix_snapshots_disk", "disk_id", "account_id", "region", "created_at", "snapshot_id"),
    Index(
        "ix_snapshots_instance", "instance_id", "account_id", "region", "created_at", "snapshot_id"
    ),
)

# The last time each snapshot's data was read back whole and compared with its checksum
# (lighthouse/scrub.py): GOOD or CORRUPT, and by which node. Apart from ``snapshots`` so the
# hot snapshot queries never touch it.
snapshot_checks = Table(
    "snapshot_checks",
    metadata,
    Column("snapshot_id", String(16), primary_key=True),
    Column("verified_at", DateTime, nullable=False),
    Column("result", String(12), nullable=False),
    Column("node", String(64), nullable=True),
    Index("ix_snapshot_checks_verified", "verified_at"),
)

# Data disks' backups (issue #18): a storage snapshot of the disk each, states of their own.
disk_backups = Table(
    "disk_backups",
    metadata,
    Column("disk_backup_id", String(16), primary_key=True),
    Column("account_id", Integer, _fk("accounts.id"), nullable=False),
    Column("region", String(32), nullable=False),
    Column("disk_id", String(16), nullable=False),
    Column("disk_size_gb", Integer, nullable=False),
    Column("name", String(90), nullable=False),
    Column("state", String(16), nullable=False),
    Column("percent", Integer, nullable=False),
    Column("latest_operation", String(40), nullable=True),
    Column("latest_operation_state", String(12), nullable=True),
    Column("latest_operation_request_id", String(36), nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("checksum", String(80), nullable=True),
    Column("corrupt", Integer, nullable=False, server_default="0"),  # (0017: scrubbed)
    Index("ix_disk_backups_disk", "disk_id"),
    Index(
        "ix_disk_backups_account_region_created",
        "account_id",
        "region",
        "created_at",
        "disk_backup_id",
    ),
)

tags = Table(
    "tags",
    metadata,
    Column("resource_id", String(16), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("value", String(256), nullable=False),
    Index("ix_tags_key_value", "key", "value", "resource_id"),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(24), nullable=False),
    Column("account_id", Integer, nullable=False),
    Column("instance_id", String(16), nullable=True),  # NULL: a job on a detached disk
    Column("disk_id", String(16), nullable=True),  # the disk it works on, if any
    Column("snapshot_id", String(16), nullable=True),
    Column("request_id", String(36), nullable=False),
    Column("state", String(12), nullable=False),
    Column("params", String(1024), nullable=False, server_default="{}"),
    Column("message", String(1024), nullable=True),
    Column("owner", String(128), nullable=True),
    Column("node", String(64), nullable=True),  # the node whose worker claimed it last
    Column("lease_until", Float, nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    # The lease's fencing token: every claim bumps it; every commit of the job's effects is
    # conditional on it (store/jobs.py), so a worker that lost its lease commits nothing.
    Column("epoch", Integer, nullable=False, server_default="0"),
    Column("created_at", DateTime, nullable=False),
    Column("started_at", DateTime, nullable=True),
    Column("finished_at", DateTime, nullable=True),
    # Who may claim it (lighthouse/placement.py; NULL: anyone): the instance's node when
    # it needs the machine, a node of the disk's pool when it needs the disk.
    Column("need_node", String(64), nullable=True),
    Column("need_pool", String(16), nullable=True),
    Index("ix_jobs_state", "state"),
    Index("ix_jobs_instance", "instance_id"),
)

policies = Table(
    "policies",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, _fk("users.id"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("document", String(65536), nullable=False),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("user_id", "name"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("tmp_secret_id", String(64), primary_key=True),
    Column("tmp_secret_key", String(64), nullable=False),  # HMAC needs the key itself
    Column("token_sha256", String(64), nullable=False),  # a token is only ever compared
    Column("account_id", Integer, _fk("accounts.id"), nullable=False),
    Column("user_id", Integer, _fk("users.id"), nullable=True),
    Column("policy", String(65536), nullable=True),
    Column("expires_at", Float, nullable=False, index=True),
    Column("created_at", DateTime, nullable=False),
)

# An instance that ``admin instance create|import`` has reserved and whose disk it is still
# copying (outside any transaction); the row goes in the commit that inserts the instance.
# One left by a creator that died is undone at the next start (lighthouse/admin.py).
pending_instances = Table(
    "pending_instances",
    metadata,
    Column("instance_id", String(16), primary_key=True),
    Column("disk_id", String(16), nullable=False, unique=True),
    Column("created_at", DateTime, nullable=False),
)

# Every server of the database, registered at start and kept fresh by its heartbeat
# (store/nodes.py): what ``admin node list`` shows and what tells a live node from a dead one.
nodes = Table(
    "nodes",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("address", String(128), nullable=False),  # host:port its API listens on
    Column("host", String(255), nullable=False),  # the machine's host name
    Column("pid", Integer, nullable=False),
    Column("storage", String(16), nullable=False),
    Column("compute", String(16), nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("heartbeat_at", DateTime, nullable=False),
    Column("heartbeat_seconds", Float, nullable=False),  # its interval: staleness is relative
    Column("pool", String(16), nullable=True),  # the storage pool it reaches
)

# What the nodes of one PostgreSQL database count together (store/shared.py): requests per
# second per action, region and principal (the rate limits), and the v1 nonces seen (the
# replay guard). One node on SQLite counts in memory instead.
rate_counts = Table(
    "rate_counts",
    metadata,
    Column("second", Integer, primary_key=True),
    Column("action", String(64), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("principal", String(160), primary_key=True),
    Column("count", Integer, nullable=False),
)

replay_nonces = Table(
    "replay_nonces",
    metadata,
    Column("digest", String(64), primary_key=True),  # sha256 of SecretId, Nonce, Timestamp
    Column("expires_at", Float, nullable=False, index=True),
)

# One row (id 1) the health check writes to learn whether a database whose last write failed
# takes writes again (store/health.py).
store_probe = Table(
    "store_probe",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("probed_at", Float, nullable=False),
)

# One row (id 1) whose ``version`` SQLite triggers on accounts, users, api_keys, policies and
# sessions bump (migration 0004): the API's key cache is valid while it is unchanged.
auth_version = Table(
    "auth_version",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
)
