"""Rows <-> domain values for instances, snapshots, tags and blueprints.

Every function takes an open ``Connection`` so the caller decides the transaction: the rules
that must be atomic (quota, locks) run their reads and writes inside one ``write()``.
"""

from __future__ import annotations

import datetime as dt
import functools
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypedDict, Unpack

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Integer,
    Row,
    ScalarSelect,
    Select,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    true,
    update,
)

from lightkeeper.domain.model import (
    QUOTA_EXCLUDED_BUNDLES,
    QUOTA_EXCLUDED_STATES,
    SETTLED_STATES,
    Disk,
    DiskBackup,
    DiskState,
    DiskUsage,
    Instance,
    InstanceState,
    OperationState,
    RestrictState,
    Snapshot,
    SnapshotState,
)
from lightkeeper.domain.rules import SYSTEM_DISK_NAME_SUFFIX
from lightkeeper.storage.base import SnapshotRef
from lightkeeper.store.database import psycopg_params
from lightkeeper.store.tables import (
    blueprints,
    deleted_snapshots,
    disk_backups,
    disks,
    instances,
    pending_instances,
    snapshot_checks,
    snapshots,
    tags,
)


def utcnow() -> dt.datetime:
    """Naive UTC with microseconds: the API shows whole seconds, but ordering needs more."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


# -- tags ------------------------------------------------------------------------------------


def set_tags(
    conn: Connection, resource_id: str, values: Mapping[str, str], *, new: bool = False
) -> None:
    """``new``: the resource was just inserted, so it has no tags to replace yet."""
    if not new:
        conn.execute(_DELETE_TAGS, {"resource_id": resource_id})
    if values:
        conn.execute(
            insert(tags),
            [{"resource_id": resource_id, "key": k, "value": v} for k, v in values.items()],
        )


# Built once, as the other hot statements below: constructing a statement (and its cache
# key) costs more than running it on a page of ids.
_DELETE_TAGS = delete(tags).where(tags.c.resource_id == bindparam("resource_id"))
_TAGS_FOR = (
    select(tags.c.resource_id, tags.c.key, tags.c.value)
    .where(tags.c.resource_id.in_(bindparam("ids", expanding=True)))
    .order_by(tags.c.resource_id, tags.c.key)
)


def tags_for(conn: Connection, ids: Sequence[str]) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {i: {} for i in ids}
    if ids:
        for resource_id, key, value in conn.execute(_TAGS_FOR, {"ids": list(ids)}):
            found[resource_id][key] = value
    return found


def tag_clause(id_column: Any, name: str, values: Sequence[str]) -> ColumnElement[bool]:
    """``tag-key`` / ``tag-value`` / ``tag:<key>`` filters as ``id IN (tagged ids)``: one
    uncorrelated subquery SQLite evaluates once from ``ix_tags_key_value``, where a correlated
    EXISTS probed the tags table once per candidate row (docs/performance.md, "Indexes")."""
    condition: ColumnElement[bool]
    if name == "tag-key":
        condition = tags.c.key.in_(values)
    elif name == "tag-value":
        condition = tags.c.value.in_(values)
    else:
        condition = and_(tags.c.key == name[4:], tags.c.value.in_(values))
    result: ColumnElement[bool] = id_column.in_(select(tags.c.resource_id).where(condition))
    return result


# -- instances -------------------------------------------------------------------------------


_INSTANCE_COLUMNS = tuple(instances.c.keys())
_DISK_COLUMNS = tuple(disks.c.keys())
_SNAPSHOT_COLUMNS = tuple(snapshots.c.keys())

# An instance is read with its system disk, one row per instance (ux_disks_system_disk).
_WITH_SYSTEM_DISK = instances.join(
    disks,
    and_(
        disks.c.instance_id == instances.c.instance_id,
        disks.c.disk_usage == DiskUsage.SYSTEM_DISK.value,
    ),
)
_SELECT_INSTANCES = select(instances, disks).select_from(_WITH_SYSTEM_DISK)
_GET_INSTANCE = _SELECT_INSTANCES.where(instances.c.instance_id == bindparam("instance_id"))
_GET_ACCOUNT_INSTANCE = _GET_INSTANCE.where(instances.c.account_id == bindparam("account_id"))


def _disk(data: dict[str, Any]) -> Disk:
    data["disk_usage"] = DiskUsage(data["disk_usage"])
    return Disk(**data)


def _instance(row: Row[Any], tag_map: Mapping[str, str] | None = None) -> Instance:
    """A row of ``_SELECT_INSTANCES``: the instance's columns, then its system disk's."""
    split = len(_INSTANCE_COLUMNS)
    data = dict(zip(_INSTANCE_COLUMNS, row[:split], strict=True))
    data["state"] = InstanceState(data["state"])
    data["restrict_state"] = RestrictState(data["restrict_state"])
    data["latest_operation_state"] = _operation_state(data["latest_operation_state"])
    disk = _disk(dict(zip(_DISK_COLUMNS, row[split:], strict=True)))
    return Instance(**data, system_disk=disk, tags=dict(tag_map or {}))


def _operation_state(value: str | None) -> OperationState | None:
    return None if value is None else OperationState(value)


def get_instance(
    conn: Connection, instance_id: str, account_id: int | None = None, *, tags: bool = True
) -> Instance | None:
    """``tags``: read the instance's tags too (one more statement; only a view shows them)."""
    if account_id is None:
        row = conn.execute(_GET_INSTANCE, {"instance_id": instance_id}).first()
    else:
        params = {"instance_id": instance_id, "account_id": account_id}
        row = conn.execute(_GET_ACCOUNT_INSTANCE, params).first()
    if row is None:
        return None
    return _instance(row, tags_for(conn, [instance_id])[instance_id] if tags else None)


def get_disk(conn: Connection, disk_id: str) -> Disk | None:
    row = conn.execute(select(disks).where(disks.c.disk_id == disk_id)).first()
    return None if row is None else _disk(dict(zip(_DISK_COLUMNS, row, strict=True)))


def disk_pools(conn: Connection, disk_ids: Iterable[str]) -> dict[str, str | None]:
    """disk id -> its storage pool, for each of ``disk_ids`` (a disk gone since: None)."""
    wanted = sorted(set(disk_ids))
    found: dict[str, str | None] = dict.fromkeys(wanted)
    if wanted:
        query = select(disks.c.disk_id, disks.c.pool).where(disks.c.disk_id.in_(wanted))
        found.update({r.disk_id: r.pool for r in conn.execute(query)})
    return found


def idle_instances(conn: Connection, node: str | None) -> list[Instance]:
    """Every instance that node ``node`` runs (placed there, or nowhere) in a settled state
    without an operation in progress (without its tags)."""
    rows = conn.execute(
        _SELECT_INSTANCES.where(
            instances.c.op_job.is_(None),
            instances.c.state.in_(sorted(SETTLED_STATES)),
            or_(instances.c.node.is_(None), instances.c.node == node),
        )
    )
    return [_instance(r) for r in rows]


def _page(
    conn: Connection,
    query: Select[Any],
    condition: ColumnElement[bool],
    order: Sequence[ColumnElement[Any]],
    offset: int,
    limit: int,
    counted: Select[Any] | None = None,
) -> tuple[int, Sequence[Row[Any]]]:
    """(how many rows match, the page of them), the whole result ordered before paging.
    ``counted``: a cheaper count of the same rows (the hot DescribeInstances counts its
    instances alone, not the join with their system disks)."""
    matching = query.where(condition)
    counted = (
        counted if counted is not None else select(func.count()).select_from(matching.subquery())
    )
    total = conn.scalar(counted) or 0
    rows = conn.execute(matching.order_by(*order).offset(offset).limit(limit)).all()
    return total, rows


def list_instances(
    conn: Connection,
    account_id: int,
    region: str,
    where: Iterable[ColumnElement[bool]],
    offset: int,
    limit: int,
    order: Sequence[ColumnElement[Any]] = (),
) -> tuple[int, list[Instance]]:
    """One page; ``order`` (default: newest first) applies before paging."""
    condition = and_(instances.c.account_id == account_id, instances.c.region == region, *where)
    newest = (instances.c.created_at.desc(), instances.c.instance_id.desc())
    alone = select(func.count()).select_from(instances).where(condition)
    total, rows = _page(
        conn, _SELECT_INSTANCES, condition, order or newest, offset, limit, counted=alone
    )
    tag_map = tags_for(conn, [r.instance_id for r in rows])
    return total, [_instance(r, tag_map[r.instance_id]) for r in rows]


class DiskRow(NamedTuple):
    """A disk as DescribeDisks shows it: the disk, and what it takes from its instance."""

    disk: Disk
    name: str
    state: str
    bundle_type: str | None
    expired_at: dt.datetime | None


_DISK_NAME = func.coalesce(disks.c.name, disks.c.instance_id + SYSTEM_DISK_NAME_SUFFIX)
# A data disk has a state of its own; a system disk is ATTACHED to its instance, or
# SHUTDOWN with an instance that is (isolated).
_DISK_STATE = case(
    (disks.c.state.is_not(None), disks.c.state),
    (instances.c.state == InstanceState.SHUTDOWN.value, "SHUTDOWN"),
    else_="ATTACHED",
)
_DISK_EXPIRY = func.coalesce(disks.c.expired_at, instances.c.expired_at)
DISK_FILTER_COLUMNS: dict[str, ColumnElement[Any]] = {
    "disk-id": disks.c.disk_id,
    "instance-id": disks.c.instance_id,
    "disk-name": _DISK_NAME,
    "zone": disks.c.zone,
    "disk-usage": disks.c.disk_usage,
    "disk-state": _DISK_STATE,
}
DISK_ORDER_COLUMNS: dict[str, ColumnElement[Any]] = {
    "CREATED_TIME": disks.c.created_at,
    "EXPIRED_TIME": _DISK_EXPIRY,
    "DISK_SIZE": disks.c.size_gb,
}
_SELECT_DISKS = select(
    disks, _DISK_NAME, _DISK_STATE, instances.c.bundle_type, _DISK_EXPIRY
).select_from(disks.outerjoin(instances, instances.c.instance_id == disks.c.instance_id))


def list_disks(
    conn: Connection,
    account_id: int,
    region: str,
    where: Iterable[ColumnElement[bool]],
    offset: int,
    limit: int,
    order: Sequence[ColumnElement[Any]] = (),
) -> tuple[int, list[DiskRow]]:
    """One page of an account's disks in a region; ``order`` (default: newest first)."""
    condition = and_(disks.c.account_id == account_id, disks.c.region == region, *where)
    newest = (disks.c.created_at.desc(), disks.c.disk_id.desc())
    total, rows = _page(conn, _SELECT_DISKS, condition, order or newest, offset, limit)
    width = len(_DISK_COLUMNS)
    return total, [
        DiskRow(_disk(dict(zip(_DISK_COLUMNS, r[:width], strict=True))), *r[width:]) for r in rows
    ]


def attached_data_disks(conn: Connection, instance_ids: Sequence[str]) -> dict[str, int]:
    """instance id -> how many data disks are attached to it (DescribeInstancesDiskNum)."""
    query = (
        select(disks.c.instance_id, func.count())
        .where(
            disks.c.instance_id.in_(list(instance_ids)),
            disks.c.disk_usage == DiskUsage.DATA_DISK.value,
        )
        .group_by(disks.c.instance_id)
    )
    return {row[0]: int(row[1]) for row in conn.execute(query)}


def all_instances(conn: Connection) -> list[Instance]:
    """Every instance with its tags, oldest first (the control API's state export)."""
    rows = conn.execute(
        _SELECT_INSTANCES.order_by(instances.c.created_at, instances.c.instance_id)
    ).all()
    tag_map = tags_for(conn, [r.instance_id for r in rows])
    return [_instance(r, tag_map[r.instance_id]) for r in rows]


def insert_instance(conn: Connection, instance: Instance) -> None:
    """The instance and its system disk, in the caller's transaction."""
    values = {k: v for k, v in instance.__dict__.items() if k not in ("tags", "system_disk")}
    conn.execute(insert(instances).values(**values))
    conn.execute(insert(disks).values(**instance.system_disk.__dict__))
    set_tags(conn, instance.instance_id, instance.tags)


class InstanceChanges(TypedDict, total=False):
    """The columns of an instance that change after it is created."""

    state: InstanceState
    restrict_state: RestrictState
    latest_operation: str
    latest_operation_state: OperationState
    latest_operation_request_id: str
    latest_operation_started_at: dt.datetime
    op_job: int | None
    node: str | None


def update_instance(conn: Connection, instance_id: str, **values: Unpack[InstanceChanges]) -> None:
    conn.execute(update(instances).where(instances.c.instance_id == instance_id).values(**values))


class DiskChanges(TypedDict, total=False):
    """The columns of a disk that change after it is created."""

    size_gb: int
    op_job: int | None
    instance_id: str | None
    name: str
    state: str
    latest_operation: str
    latest_operation_state: str
    latest_operation_request_id: str
    renew_flag: str
    backup_quota: int


def update_disk(conn: Connection, disk_id: str, **values: Unpack[DiskChanges]) -> None:
    conn.execute(update(disks).where(disks.c.disk_id == disk_id).values(**values))


def insert_disk(conn: Connection, disk: Disk) -> None:
    conn.execute(insert(disks).values(**disk.__dict__))


def delete_disk(conn: Connection, disk_id: str) -> None:
    conn.execute(delete(tags).where(tags.c.resource_id == disk_id))
    conn.execute(delete(disks).where(disks.c.disk_id == disk_id))


def count_data_disks(conn: Connection, account_id: int, region: str) -> int:
    """The data disks that count against an account's regional quota."""
    query = select(func.count()).where(
        disks.c.account_id == account_id,
        disks.c.region == region,
        disks.c.disk_usage == DiskUsage.DATA_DISK.value,
    )
    return conn.scalar(query) or 0


def release_disks(conn: Connection, job_id: int) -> None:
    """Every disk the job holds is free again (whichever disks a kind locked)."""
    conn.execute(update(disks).where(disks.c.op_job == job_id).values(op_job=None))


def delete_instance(conn: Connection, instance_id: str) -> None:
    """The instance and its system disk's row (data disks stay, detached)."""
    conn.execute(
        delete(disks).where(
            disks.c.instance_id == instance_id,
            disks.c.disk_usage == DiskUsage.SYSTEM_DISK.value,
        )
    )
    conn.execute(
        update(disks)
        .where(disks.c.instance_id == instance_id)
        .values(instance_id=None, state=DiskState.UNATTACHED.value)
    )
    conn.execute(delete(instances).where(instances.c.instance_id == instance_id))
    conn.execute(delete(tags).where(tags.c.resource_id == instance_id))


def reserve_instance(conn: Connection, instance_id: str, disk_id: str) -> None:
    """Record that an admin is building this instance's disk (see ``pending_instances``)."""
    conn.execute(
        insert(pending_instances).values(
            instance_id=instance_id, disk_id=disk_id, created_at=utcnow()
        )
    )


def release_reservation(conn: Connection, instance_id: str) -> bool:
    """Drop a reservation; False if it was already gone (abandoned by a cleanup)."""
    result = conn.execute(
        delete(pending_instances).where(pending_instances.c.instance_id == instance_id)
    )
    return bool(result.rowcount)


def reservations(conn: Connection) -> list[tuple[str, str]]:
    """(instance_id, disk_id) of every instance still being created."""
    rows = conn.execute(select(pending_instances.c.instance_id, pending_instances.c.disk_id))
    return [(r.instance_id, r.disk_id) for r in rows]


_COUNT_QUOTA_INSTANCES = (
    select(func.count())
    .select_from(instances)
    .where(
        instances.c.account_id == bindparam("account_id"),
        instances.c.region == bindparam("region"),
        instances.c.state.notin_(sorted(QUOTA_EXCLUDED_STATES)),
        instances.c.bundle_type.notin_(sorted(QUOTA_EXCLUDED_BUNDLES)),
    )
)


def count_quota_instances(conn: Connection, account_id: int, region: str) -> int:
    """``Instance.counts_for_snapshot_quota`` as a count: the same sets of the domain."""
    params = {"account_id": account_id, "region": region}
    return conn.scalar(_COUNT_QUOTA_INSTANCES, params) or 0


def count_instances_by_bundle(conn: Connection, account_id: int, region: str) -> dict[str, int]:
    rows = conn.execute(
        select(instances.c.bundle_type, func.count())
        .where(instances.c.account_id == account_id, instances.c.region == region)
        .group_by(instances.c.bundle_type)
    )
    return {bundle: count for bundle, count in rows}


# -- snapshots -------------------------------------------------------------------------------


def _snapshot(row: Row[Any], tag_map: Mapping[str, str] | None = None) -> Snapshot:
    data = dict(zip(_SNAPSHOT_COLUMNS, row, strict=True))  # rows of select(snapshots)
    data["corrupt"] = bool(data["corrupt"])
    data["state"] = SnapshotState(data["state"])
    data["latest_operation_state"] = _operation_state(data["latest_operation_state"])
    return Snapshot(**data, tags=dict(tag_map or {}))


_GET_SNAPSHOT = select(snapshots).where(snapshots.c.snapshot_id == bindparam("snapshot_id"))
_GET_ACCOUNT_SNAPSHOT = _GET_SNAPSHOT.where(snapshots.c.account_id == bindparam("account_id"))


def get_snapshot(
    conn: Connection, snapshot_id: str, account_id: int | None = None
) -> Snapshot | None:
    if account_id is None:
        row = conn.execute(_GET_SNAPSHOT, {"snapshot_id": snapshot_id}).first()
    else:
        params = {"snapshot_id": snapshot_id, "account_id": account_id}
        row = conn.execute(_GET_ACCOUNT_SNAPSHOT, params).first()
    if row is None:
        return None
    return _snapshot(row, tags_for(conn, [snapshot_id])[snapshot_id])


def get_snapshots(conn: Connection, account_id: int, ids: Sequence[str]) -> dict[str, Snapshot]:
    rows = conn.execute(
        select(snapshots).where(
            snapshots.c.account_id == account_id, snapshots.c.snapshot_id.in_(ids)
        )
    ).all()
    tag_map = tags_for(conn, [r.snapshot_id for r in rows])
    return {r.snapshot_id: _snapshot(r, tag_map[r.snapshot_id]) for r in rows}


def list_snapshots(
    conn: Connection,
    account_id: int,
    region: str | None,
    where: Iterable[ColumnElement[bool]],
    offset: int,
    limit: int,
) -> tuple[int, list[Snapshot]]:
    where = list(where)
    driver = _driver(conn)
    if driver is not None and not where:
        return _list_snapshots_plain(*driver, account_id, region, offset, limit)
    region_clause = snapshots.c.region == region if region is not None else true()
    condition = and_(snapshots.c.account_id == account_id, region_clause, *where)
    total = conn.scalar(select(func.count()).select_from(snapshots).where(condition)) or 0
    rows = conn.execute(
        select(snapshots)
        .where(condition)
        .order_by(snapshots.c.created_at.desc(), snapshots.c.snapshot_id.desc())
        .offset(offset)
        .limit(limit)
    ).all()
    tag_map = tags_for(conn, [r.snapshot_id for r in rows])
    return total, [_snapshot(r, tag_map[r.snapshot_id]) for r in rows]


# The DBAPI parameter marker of each engine the plain-SQL path runs on.
_MARKS = {"sqlite": "?", "postgresql": "%s"}


def _driver(conn: Connection) -> tuple[Any, str] | None:
    """The driver connection under ``conn`` (sqlite3 or psycopg) and its parameter marker;
    None on other databases. Outside a transaction the one statement of the plain path runs
    on its own (it reads one snapshot by itself): on PostgreSQL in autocommit, which saves
    the BEGIN, SET TRANSACTION and ROLLBACK round trips of a read transaction (SQLAlchemy
    restores the mode when the connection returns to the pool); SQLite's driver connection
    runs outside any transaction already (``isolation_level = None``)."""
    mark = _MARKS.get(conn.dialect.name)
    if mark is None:
        return None
    if not conn.in_transaction() and conn.dialect.name == "postgresql":
        conn.execution_options(isolation_level="AUTOCOMMIT")
    return conn.connection.driver_connection, mark


_SNAPSHOT_SELECT = ", ".join(_SNAPSHOT_COLUMNS)
_SNAPSHOT_PAGE = ", ".join(f"p.{c}" for c in _SNAPSHOT_COLUMNS)
_SNAPSHOT_CREATED = _SNAPSHOT_COLUMNS.index("created_at")
_SNAPSHOT_CORRUPT = _SNAPSHOT_COLUMNS.index("corrupt")
_SNAPSHOT_WIDTH = len(_SNAPSHOT_COLUMNS)
_SNAPSHOT_ID = 1 + _SNAPSHOT_COLUMNS.index("snapshot_id")  # in a row of the plain statement


def _list_snapshots_plain(
    raw: Any, mark: str, account_id: int, region: str | None, offset: int, limit: int
) -> tuple[int, list[Snapshot]]:
    """``list_snapshots`` without filters, the hot path of DescribeSnapshots, as one plain
    statement on the driver connection (sqlite3 or psycopg, whose ``execute`` both return a
    cursor): the count, the page and the page's tags in one round trip (a networked
    database's round trips, not its work, were most of the request: docs/performance.md),
    without SQLAlchemy's per-statement overhead. One row per tag of each snapshot of the
    page (one with NULL tag columns if it has none), or a single row of NULLs but the count
    when the page is empty. Same rows, order and types on both engines."""
    condition = f"account_id = {mark}"
    params: list[Any] = [account_id]
    if region is not None:
        condition += f" AND region = {mark}"
        params.append(region)
    rows = raw.execute(
        f"SELECT t.total, {_SNAPSHOT_PAGE}, g.key, g.value "
        f"FROM (SELECT count(*) AS total FROM snapshots WHERE {condition}) AS t "
        f"LEFT JOIN (SELECT {_SNAPSHOT_SELECT} FROM snapshots WHERE {condition} "
        f"ORDER BY created_at DESC, snapshot_id DESC LIMIT {mark} OFFSET {mark}) AS p ON 1 = 1 "
        "LEFT JOIN tags AS g ON g.resource_id = p.snapshot_id "
        "ORDER BY p.created_at DESC, p.snapshot_id DESC, g.key",
        [*params, *params, limit, offset],
    ).fetchall()
    pages: dict[str, tuple[Any, dict[str, str]]] = {}  # in the page's order
    for row in rows:
        snapshot_id, key = row[_SNAPSHOT_ID], row[1 + _SNAPSHOT_WIDTH]
        if snapshot_id is None:  # the empty page's one row
            continue
        if snapshot_id not in pages:
            pages[snapshot_id] = (row[1 : 1 + _SNAPSHOT_WIDTH], {})
        if key is not None:
            pages[snapshot_id][1][key] = row[2 + _SNAPSHOT_WIDTH]
    found = []
    for columns, tag_map in pages.values():
        data = dict(zip(_SNAPSHOT_COLUMNS, columns, strict=True))
        data["created_at"] = _sqlite_datetime(columns[_SNAPSHOT_CREATED])
        data["corrupt"] = bool(columns[_SNAPSHOT_CORRUPT])
        data["state"] = SnapshotState(data["state"])
        data["latest_operation_state"] = _operation_state(data["latest_operation_state"])
        found.append(Snapshot(**data, tags=tag_map))
    return int(rows[0][0]), found


def _sqlite_datetime(value: Any) -> dt.datetime:
    """SQLAlchemy stores ``DateTime`` on SQLite as ``YYYY-MM-DD HH:MM:SS.ffffff`` text."""
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)


def existing_snapshot_ids(conn: Connection, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` have a record: snapshots, and disk backups (stored as snapshots of
    their data disk, so the orphan scan must know them too)."""
    query = select(snapshots.c.snapshot_id).where(snapshots.c.snapshot_id.in_(ids))
    backups = select(disk_backups.c.disk_backup_id).where(disk_backups.c.disk_backup_id.in_(ids))
    return set(conn.scalars(query)) | set(conn.scalars(backups))


# -- disk backups --------------------------------------------------------------------------

_BACKUP_COLUMNS = tuple(disk_backups.c.keys())


def _backup(row: Row[Any], tag_map: Mapping[str, str] | None = None) -> DiskBackup:
    data = dict(zip(_BACKUP_COLUMNS, row, strict=True))
    data["corrupt"] = bool(data["corrupt"])
    return DiskBackup(**data, tags=dict(tag_map or {}))


def insert_disk_backup(conn: Connection, backup: DiskBackup) -> None:
    values = {k: v for k, v in backup.__dict__.items() if k != "tags"}
    values["corrupt"] = int(backup.corrupt)
    conn.execute(insert(disk_backups).values(**values))
    set_tags(conn, backup.disk_backup_id, backup.tags)


def get_disk_backup(conn: Connection, backup_id: str) -> DiskBackup | None:
    query = select(disk_backups).where(disk_backups.c.disk_backup_id == backup_id)
    row = conn.execute(query).first()
    return None if row is None else _backup(row, tags_for(conn, [backup_id])[backup_id])


class DiskBackupChanges(TypedDict, total=False):
    name: str
    state: str
    percent: int
    latest_operation: str
    latest_operation_state: str
    latest_operation_request_id: str
    checksum: str
    corrupt: int


def update_disk_backup(
    conn: Connection, backup_id: str, **values: Unpack[DiskBackupChanges]
) -> None:
    query = update(disk_backups).where(disk_backups.c.disk_backup_id == backup_id)
    conn.execute(query.values(**values))


def delete_disk_backups(conn: Connection, backup_ids: Sequence[str]) -> None:
    """Rows and tags gone, a tombstone each (``deleted_snapshots``: what lets the orphan scan
    delete their data if this process dies before it does)."""
    if not backup_ids:
        return
    ids_ = list(backup_ids)
    conn.execute(delete(disk_backups).where(disk_backups.c.disk_backup_id.in_(ids_)))
    conn.execute(delete(snapshot_checks).where(snapshot_checks.c.snapshot_id.in_(ids_)))
    conn.execute(delete(tags).where(tags.c.resource_id.in_(ids_)))
    now = utcnow()
    conn.execute(insert(deleted_snapshots), [{"snapshot_id": i, "deleted_at": now} for i in ids_])


def list_disk_backups(
    conn: Connection,
    account_id: int,
    region: str,
    where: Iterable[ColumnElement[bool]],
    offset: int,
    limit: int,
) -> tuple[int, list[DiskBackup]]:
    condition = and_(
        disk_backups.c.account_id == account_id, disk_backups.c.region == region, *where
    )
    newest = (disk_backups.c.created_at.desc(), disk_backups.c.disk_backup_id.desc())
    total, rows = _page(conn, select(disk_backups), condition, newest, offset, limit)
    tag_map = tags_for(conn, [r.disk_backup_id for r in rows])
    return total, [_backup(r, tag_map[r.disk_backup_id]) for r in rows]


def disk_backup_refs(conn: Connection, disk_ids: Sequence[str]) -> list[SnapshotRef]:
    """The stored snapshots that are these disks' backups."""
    query = select(disk_backups.c.disk_id, disk_backups.c.disk_backup_id).where(
        disk_backups.c.disk_id.in_(list(disk_ids))
    )
    return [SnapshotRef(row.disk_id, row.disk_backup_id) for row in conn.execute(query)]


def backup_counts(conn: Connection, disk_ids: Sequence[str]) -> dict[str, int]:
    """disk id -> how many backups it has (a disk's DiskBackupCount, and its quota)."""
    query = (
        select(disk_backups.c.disk_id, func.count())
        .where(disk_backups.c.disk_id.in_(list(disk_ids)))
        .group_by(disk_backups.c.disk_id)
    )
    return {row[0]: int(row[1]) for row in conn.execute(query)}


def all_snapshots(conn: Connection) -> list[Snapshot]:
    """Every snapshot, oldest first (without tags: the control API's state export)."""
    query = select(snapshots).order_by(snapshots.c.created_at, snapshots.c.snapshot_id)
    return [_snapshot(r) for r in conn.execute(query)]


def snapshots_of_instance(conn: Connection, instance_id: str) -> list[Snapshot]:
    rows = conn.execute(select(snapshots).where(snapshots.c.instance_id == instance_id)).all()
    return [_snapshot(r) for r in rows]


_INSERT_SNAPSHOT = insert(snapshots)


def insert_snapshot(conn: Connection, snapshot: Snapshot) -> None:
    values = {k: v for k, v in snapshot.__dict__.items() if k != "tags"}
    values["corrupt"] = int(snapshot.corrupt)
    conn.execute(_INSERT_SNAPSHOT, values)
    set_tags(conn, snapshot.snapshot_id, snapshot.tags, new=True)


class SnapshotChanges(TypedDict, total=False):
    """The columns of a snapshot that change after it is created."""

    name: str
    state: SnapshotState
    percent: int
    latest_operation: str
    latest_operation_state: OperationState
    latest_operation_request_id: str
    checksum: str
    corrupt: int


def update_snapshot(conn: Connection, snapshot_id: str, **values: Unpack[SnapshotChanges]) -> None:
    conn.execute(update(snapshots).where(snapshots.c.snapshot_id == snapshot_id).values(**values))


def delete_snapshots(conn: Connection, ids: Sequence[str]) -> None:
    """Delete the records and leave a tombstone for each until its data is gone."""
    if not ids:
        return
    conn.execute(delete(snapshots).where(snapshots.c.snapshot_id.in_(ids)))
    conn.execute(delete(tags).where(tags.c.resource_id.in_(ids)))
    conn.execute(delete(snapshot_checks).where(snapshot_checks.c.snapshot_id.in_(ids)))
    conn.execute(delete(deleted_snapshots).where(deleted_snapshots.c.snapshot_id.in_(ids)))
    now = utcnow()
    conn.execute(insert(deleted_snapshots), [{"snapshot_id": i, "deleted_at": now} for i in ids])


def deleted_snapshot_ids(conn: Connection) -> set[str]:
    return set(conn.scalars(select(deleted_snapshots.c.snapshot_id)))


def forget_deleted_snapshots(conn: Connection, ids: Iterable[str]) -> None:
    """Their data is gone: the tombstones have nothing left to prove."""
    ids = list(ids)
    if ids:
        conn.execute(delete(deleted_snapshots).where(deleted_snapshots.c.snapshot_id.in_(ids)))


_COUNT_SNAPSHOTS = (
    select(func.count())
    .select_from(snapshots)
    .where(
        snapshots.c.account_id == bindparam("account_id"),
        snapshots.c.region == bindparam("region"),
    )
)


def count_snapshots(conn: Connection, account_id: int, region: str) -> int:
    return conn.scalar(_COUNT_SNAPSHOTS, {"account_id": account_id, "region": region}) or 0


class CreateChecks(NamedTuple):
    """What a snapshot create checks under the write lock, read in one statement (on
    PostgreSQL each statement is a round trip, made while the lock is held)."""

    quota_instances: int  # count_quota_instances, up to the cap asked for
    snapshots: int  # count_snapshots, up to the cap asked for
    blueprint_exists: bool
    id_taken: bool  # the candidate snapshot id is in use already


def _counted_up_to(query: Select[Any], cap: int) -> ScalarSelect[Any]:
    """``count(*)`` of ``query``'s rows, stopping at ``cap``: a literal, so the planner
    knows the scan stops early (for ``LIMIT $1`` PostgreSQL's generic plan assumes a tenth
    of the rows)."""
    one: Select[Any] = query.with_only_columns(literal_column("1"))
    rows = one.limit(literal(cap, Integer, literal_execute=True))  # LIMIT 5, not LIMIT $1
    return select(func.count()).select_from(rows.subquery()).scalar_subquery()


@functools.lru_cache(maxsize=4)
def _create_checks(instance_cap: int, snapshot_cap: int) -> Select[Any]:
    """Built once per server setting of the quota (the caps never change while it runs)."""
    return select(
        _counted_up_to(_COUNT_QUOTA_INSTANCES, instance_cap),
        _counted_up_to(_COUNT_SNAPSHOTS, snapshot_cap),
        exists().where(blueprints.c.blueprint_id == bindparam("blueprint_id")),
        exists().where(snapshots.c.snapshot_id == bindparam("snapshot_id")),
    )


def create_checks(
    conn: Connection,
    account_id: int,
    region: str,
    blueprint_id: str,
    snapshot_id: str,
    caps: tuple[int, int],
) -> CreateChecks:
    """``caps``: count at most this many quota instances and snapshots
    (``rules.quota_counts_that_matter``)."""
    params = {
        "account_id": account_id,
        "region": region,
        "blueprint_id": blueprint_id,
        "snapshot_id": snapshot_id,
    }
    quota_instances, used, blueprint, taken = conn.execute(_create_checks(*caps), params).one()
    return CreateChecks(quota_instances, used, bool(blueprint), bool(taken))


# -- blueprints ------------------------------------------------------------------------------


def get_blueprints(conn: Connection, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Several blueprints in one query (a page of instances shares a handful)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = conn.execute(select(blueprints).where(blueprints.c.blueprint_id.in_(wanted)))
    return {r.blueprint_id: dict(r._mapping) for r in rows}


def get_blueprint(conn: Connection, blueprint_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(blueprints).where(blueprints.c.blueprint_id == blueprint_id)).first()
    return dict(row._mapping) if row is not None else None


def list_blueprints(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(blueprints).order_by(blueprints.c.blueprint_id))
    return [dict(r._mapping) for r in rows]


def insert_blueprint(
    conn: Connection,
    blueprint_id: str,
    name: str,
    os_name: str,
    platform: str,
    platform_type: str,
    image_path: str | None = None,
) -> None:
    """A public blueprint (``account_id`` NULL: every account may use it)."""
    conn.execute(
        insert(blueprints).values(
            blueprint_id=blueprint_id,
            account_id=None,
            name=name,
            os_name=os_name,
            platform=platform,
            platform_type=platform_type,
            image_path=image_path,
            created_at=utcnow(),
        )
    )


def delete_blueprint(conn: Connection, blueprint_id: str) -> bool:
    result = conn.execute(delete(blueprints).where(blueprints.c.blueprint_id == blueprint_id))
    return bool(result.rowcount)


# -- credentials version ---------------------------------------------------------------------


def auth_version_reader(engine: Engine) -> Callable[[], int | None] | None:
    """A cheap reader of ``auth_version`` (bumped by triggers on every credential change, by
    whichever node), on a plain driver connection of its own: far cheaper than a pooled
    SQLAlchemy query (docs/performance.md). None for databases without those triggers."""
    if engine.dialect.name == "postgresql":
        return _postgresql_auth_version(engine)
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or not Path(database).is_file():
        return None
    conn = sqlite3.connect(database, check_same_thread=False, isolation_level=None)
    lock = threading.Lock()

    def read() -> int | None:
        try:
            with lock:  # fetchall: the statement is finished, no read snapshot stays open
                rows = conn.execute("SELECT version FROM auth_version WHERE id = 1").fetchall()
                # DDL (a dropped or rebuilt table loses its triggers) changes schema_version
                schema = conn.execute("PRAGMA schema_version").fetchall()
        except sqlite3.Error:
            return None
        if not rows:
            return None
        return int(rows[0][0]) << 32 | int(schema[0][0]) & 0xFFFFFFFF

    return read


# Connections the PostgreSQL version reader keeps: concurrent requests each read the version
# (one round trip); one connection under a lock made them queue for each other's round trip.
VERSION_CONNECTIONS = 4


def _postgresql_auth_version(engine: Engine) -> Callable[[], int | None]:
    """The version row read on a few autocommit connections of its own, each opened on
    first need and dropped after a failure (a database restart): while none answers, the
    version is unknown and nothing is cached."""
    import psycopg

    params = psycopg_params(engine.url)
    idle: queue.LifoQueue[psycopg.Connection[Any] | None] = queue.LifoQueue()
    for _ in range(VERSION_CONNECTIONS):
        idle.put(None)  # a slot whose connection is not open yet

    def read() -> int | None:
        conn = idle.get()
        try:
            if conn is None:
                conn = psycopg.connect(autocommit=True, connect_timeout=5, **params)
            row = conn.execute("SELECT version FROM auth_version WHERE id = 1").fetchone()
        except psycopg.Error:
            if conn is not None:
                conn.close()
            conn = None
            return None
        finally:
            idle.put(conn)
        return None if row is None else int(row[0])

    return read
