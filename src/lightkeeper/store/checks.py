"""When each snapshot's (and disk backup's) data was last verified (``snapshot_checks``), and
which are due."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Join,
    Select,
    Subquery,
    Table,
    and_,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    union_all,
)

from lightkeeper.domain.model import SnapshotState
from lightkeeper.store.tables import disk_backups, disks, snapshot_checks, snapshots

GOOD = "GOOD"
CORRUPT = "CORRUPT"


@dataclass(frozen=True, slots=True)
class Due:
    """A snapshot whose data is to be read back: its disk and the checksum to compare."""

    snapshot_id: str
    disk_id: str
    checksum: str
    verified_at: dt.datetime | None


def _copies(pool: str | None) -> Subquery:
    """The data this node can and should read back: NORMAL snapshots and disk backups (a
    backup's data is a snapshot of its disk) with a checksum, not yet found corrupt, on a
    disk of ``pool`` (or of no recorded pool); ``copy_id``, ``disk_id``, ``checksum``,
    ``created_at`` each."""

    def part(table: Table, copy_id: ColumnElement[str]) -> Select[Any]:
        where = [
            table.c.state == SnapshotState.NORMAL.value,  # (a backup's NORMAL is the same)
            table.c.corrupt == 0,
            table.c.checksum.is_not(None),
        ]
        if pool is not None:
            where.append(or_(disks.c.pool.is_(None), disks.c.pool == pool))
        return (
            select(
                copy_id.label("copy_id"), table.c.disk_id, table.c.checksum, table.c.created_at
            )  # fmt: skip
            .select_from(table.outerjoin(disks, disks.c.disk_id == table.c.disk_id))
            .where(and_(*where))
        )

    return union_all(
        part(snapshots, snapshots.c.snapshot_id),
        part(disk_backups, disk_backups.c.disk_backup_id),
    ).subquery("copies")


def _checked(copies: Subquery) -> tuple[Join, ColumnElement[dt.datetime]]:
    """The copies with their last check, and when each was last known good: its last check,
    else when it was taken (a new one's changed blocks were just hashed from the disk; the
    rest waits an interval)."""
    joined = copies.outerjoin(snapshot_checks, snapshot_checks.c.snapshot_id == copies.c.copy_id)
    return joined, func.coalesce(snapshot_checks.c.verified_at, copies.c.created_at)


def due(conn: Connection, pool: str | None, before: dt.datetime, limit: int = 8) -> list[Due]:
    """The snapshots and backups last known good before ``before``, longest ago first."""
    copies = _copies(pool)
    joined, last_seen = _checked(copies)
    rows = conn.execute(
        select(
            copies.c.copy_id, copies.c.disk_id, copies.c.checksum, snapshot_checks.c.verified_at
        )  # fmt: skip
        .select_from(joined)
        .where(last_seen < before)
        .order_by(last_seen, copies.c.copy_id)
        .limit(literal(limit, literal_execute=True))
    )
    return [Due(*row) for row in rows]


def record(
    conn: Connection, snapshot_id: str, at: dt.datetime, result: str, node: str | None
) -> None:
    """Replace the snapshot's (or backup's) last check; nothing for one deleted meanwhile."""
    conn.execute(delete(snapshot_checks).where(snapshot_checks.c.snapshot_id == snapshot_id))
    there = union_all(
        select(snapshots.c.snapshot_id.label("copy_id")).where(
            snapshots.c.snapshot_id == snapshot_id
        ),
        select(disk_backups.c.disk_backup_id).where(disk_backups.c.disk_backup_id == snapshot_id),
    ).subquery("there")
    conn.execute(
        insert(snapshot_checks).from_select(
            ["snapshot_id", "verified_at", "result", "node"],
            select(
                there.c.copy_id,
                literal(at, snapshot_checks.c.verified_at.type),
                literal(result),
                literal(node, snapshot_checks.c.node.type),
            ),
        )
    )


def coverage(conn: Connection, pool: str | None, since: dt.datetime) -> tuple[int, int]:
    """(verifiable snapshots and backups, how many were known good at or after ``since``)."""
    copies = _copies(pool)
    joined, last_seen = _checked(copies)
    fresh = func.sum(case((last_seen >= since, 1), else_=0))
    total, verified = conn.execute(select(func.count(), fresh).select_from(joined)).one()
    return int(total), int(verified or 0)


def last_check(conn: Connection, snapshot_id: str) -> tuple[dt.datetime, str] | None:
    row = conn.execute(
        select(snapshot_checks.c.verified_at, snapshot_checks.c.result).where(
            snapshot_checks.c.snapshot_id == snapshot_id
        )
    ).first()
    return None if row is None else (row[0], row[1])
