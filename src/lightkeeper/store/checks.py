"""When each snapshot's data was last verified (``snapshot_checks``), and which are due."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import (
    ColumnElement,
    Connection,
    Join,
    and_,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
)

from lightkeeper.domain.model import SnapshotState
from lightkeeper.store.tables import disks, snapshot_checks, snapshots

GOOD = "GOOD"
CORRUPT = "CORRUPT"


@dataclass(frozen=True, slots=True)
class Due:
    """A snapshot whose data is to be read back: its disk and the checksum to compare."""

    snapshot_id: str
    disk_id: str
    checksum: str
    verified_at: dt.datetime | None


def _verifiable(pool: str | None) -> tuple[Join, ColumnElement[bool]]:
    """NORMAL snapshots with a checksum, not yet found corrupt, on a disk of ``pool`` (or of
    no recorded pool): the ones this node can and should read back."""
    where = [
        snapshots.c.state == SnapshotState.NORMAL.value,
        snapshots.c.corrupt == 0,
        snapshots.c.checksum.is_not(None),
    ]
    if pool is not None:
        where.append(or_(disks.c.pool.is_(None), disks.c.pool == pool))
    return (
        snapshots.outerjoin(
            snapshot_checks, snapshot_checks.c.snapshot_id == snapshots.c.snapshot_id
        ).outerjoin(disks, disks.c.disk_id == snapshots.c.disk_id),
        and_(*where),
    )


def _last_seen() -> ColumnElement[dt.datetime]:
    """When the data was last known good: its last check, else when it was taken (a new
    snapshot's changed blocks were just hashed from the disk; the rest waits an interval)."""
    return func.coalesce(snapshot_checks.c.verified_at, snapshots.c.created_at)


def due(conn: Connection, pool: str | None, before: dt.datetime, limit: int = 8) -> list[Due]:
    """The snapshots last known good before ``before``, longest ago first."""
    joined, where = _verifiable(pool)
    rows = conn.execute(
        select(
            snapshots.c.snapshot_id,
            snapshots.c.disk_id,
            snapshots.c.checksum,
            snapshot_checks.c.verified_at,
        )
        .select_from(joined)
        .where(where, _last_seen() < before)
        .order_by(_last_seen(), snapshots.c.snapshot_id)
        .limit(literal(limit, literal_execute=True))
    )
    return [Due(*row) for row in rows]


def record(
    conn: Connection, snapshot_id: str, at: dt.datetime, result: str, node: str | None
) -> None:
    """Replace the snapshot's last check; nothing for a snapshot deleted meanwhile."""
    conn.execute(delete(snapshot_checks).where(snapshot_checks.c.snapshot_id == snapshot_id))
    conn.execute(
        insert(snapshot_checks).from_select(
            ["snapshot_id", "verified_at", "result", "node"],
            select(
                snapshots.c.snapshot_id,
                literal(at, snapshot_checks.c.verified_at.type),
                literal(result),
                literal(node, snapshot_checks.c.node.type),
            ).where(snapshots.c.snapshot_id == snapshot_id),
        )
    )


def coverage(conn: Connection, pool: str | None, since: dt.datetime) -> tuple[int, int]:
    """(verifiable snapshots, how many were known good at or after ``since``)."""
    joined, where = _verifiable(pool)
    fresh = func.sum(case((_last_seen() >= since, 1), else_=0))
    total, verified = conn.execute(
        select(func.count(), fresh).select_from(joined).where(where)
    ).one()
    return int(total), int(verified or 0)


def last_check(conn: Connection, snapshot_id: str) -> tuple[dt.datetime, str] | None:
    row = conn.execute(
        select(snapshot_checks.c.verified_at, snapshot_checks.c.result).where(
            snapshot_checks.c.snapshot_id == snapshot_id
        )
    ).first()
    return None if row is None else (row[0], row[1])
