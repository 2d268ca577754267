"""Empty the world in one transaction (the control API's ``reset``, for tests): every
instance, disk, snapshot, tag, job, sub-user, policy, session and account goes, except one
account and its root keys, so clients made before the reset keep working.

Blueprints (the server's images), nodes and the anti-replay nonces stay: they are the
server's configuration and safety, not a test's world. The data of the disks and snapshots
is deleted by the caller after the commit (``Doomed``): never I/O inside the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, delete, select

from lightkeeper.store import tables as t


@dataclass(frozen=True)
class Doomed:
    """What the reset removed, for the caller to delete outside the transaction."""

    instance_ids: list[str]
    disk_ids: list[str]
    snapshots: list[tuple[str, str]]  # (disk_id, snapshot_id)


def reset(conn: Connection, keep_account: str) -> Doomed:
    kept = conn.execute(select(t.accounts.c.id).where(t.accounts.c.name == keep_account)).scalar()
    doomed = Doomed(
        instance_ids=list(conn.execute(select(t.instances.c.instance_id)).scalars()),
        disk_ids=list(conn.execute(select(t.disks.c.disk_id)).scalars()),
        snapshots=[
            (row.disk_id, row.snapshot_id)
            for row in conn.execute(select(t.snapshots.c.disk_id, t.snapshots.c.snapshot_id))
        ]
        + [
            (row.disk_id, row.disk_backup_id)  # a disk backup's data is a storage snapshot
            for row in conn.execute(
                select(t.disk_backups.c.disk_id, t.disk_backups.c.disk_backup_id)
            )
        ],
    )
    for table in (
        t.tags,
        t.snapshot_checks,
        t.snapshots,
        t.disk_backups,
        t.deleted_snapshots,
        t.disks,
        t.pending_instances,
        t.instances,
        t.jobs,
        t.sessions,
        t.policies,
        t.rate_counts,
    ):
        conn.execute(delete(table))
    conn.execute(delete(t.api_keys).where(t.api_keys.c.user_id.is_not(None)))
    conn.execute(delete(t.users))
    conn.execute(delete(t.api_keys).where(t.api_keys.c.account_id != kept))
    conn.execute(delete(t.blueprints).where(t.blueprints.c.account_id.is_not(None)))
    conn.execute(delete(t.accounts).where(t.accounts.c.id != kept))
    return doomed
