"""Seed a world fast, directly through SQLAlchemy bulk inserts (no API calls, no copies).

Rows are the same rows the API writes (``store.tables``), so every read path sees real data;
snapshots have no data files, which only ``ApplyInstanceSnapshot`` would need.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from lightkeeper.config import Settings
from lightkeeper.domain import ids
from lightkeeper.server import DEFAULT_BLUEPRINT, Services, open_services
from lightkeeper.store.database import write
from lightkeeper.store.tables import disks as disks_table
from lightkeeper.store.tables import instances, snapshots, tags

REGION = "ap-guangzhou"
ZONE = "ap-guangzhou-3"
BATCH = 5000


@dataclass
class Seeded:
    secret_id: str
    secret_key: str
    account_id: int
    instance_ids: list[str]
    disk_ids: list[str]


def open_world(data_dir: Path, **settings: Any) -> Services:
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return open_services(Settings(data_dir=data_dir, **settings))


def _bulk(services: Services, table: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), BATCH):
        with write(services.engine) as conn:
            conn.execute(insert(table), rows[start : start + BATCH])


def seed(
    services: Services,
    account: str,
    n_instances: int,
    n_snapshots: int,
    *,
    disks: bool = False,
    tagged: bool = True,
) -> Seeded:
    """An account with ``n_instances`` RUNNING instances in one region and ``n_snapshots``
    NORMAL snapshots spread evenly over them. ``disks``: also create each instance's (sparse,
    empty) disk and power record, so CreateInstanceSnapshot can really run on it."""
    created, key = services.accounts.create(account)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    instance_rows, disk_rows = [], []
    for n in range(n_instances):
        instance_id, disk_id = ids.new_id(ids.INSTANCE), ids.new_id(ids.DISK)
        instance_rows.append(
            {
                "instance_id": instance_id,
                "account_id": created.id,
                "region": REGION,
                "zone": ZONE,
                "name": f"bench-{n}",
                "bundle_id": "bundle_gen_01",
                "bundle_type": "GENERAL_BUNDLE",
                "cpu": 2,
                "memory": 4,
                "blueprint_id": DEFAULT_BLUEPRINT,
                "state": "RUNNING",
                "restrict_state": "NORMAL",
                "uuid": str(uuid.uuid4()),
                "private_ip": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}",
                "public_ip": f"43.{128 + (n >> 16 & 63)}.{n >> 8 & 255}.{n & 255}",
                "created_at": now - dt.timedelta(seconds=n_instances - n),
                "expired_at": now + dt.timedelta(days=365),
                "latest_operation": None,
                "latest_operation_state": None,
                "latest_operation_request_id": None,
                "latest_operation_started_at": None,
                "op_job": None,
            }
        )
        disk_rows.append(
            {
                "disk_id": disk_id,
                "account_id": created.id,
                "region": REGION,
                "zone": ZONE,
                "instance_id": instance_id,
                "disk_usage": "SYSTEM_DISK",
                "size_gb": 1,
                "op_job": None,
                "created_at": now,
            }
        )
    _bulk(services, instances, instance_rows)
    _bulk(services, disks_table, disk_rows)
    world = services.world
    if disks:
        for row, disk_row in zip(instance_rows, disk_rows, strict=True):
            world.storage.create_disk(disk_row["disk_id"], 1024**3)
            world.compute.create(
                row["instance_id"],
                "RUNNING",
                world.storage.attachment(disk_row["disk_id"]),
            )
    snapshot_rows, tag_rows = [], []
    for n in range(n_snapshots):
        owner = instance_rows[n % n_instances]
        snapshot_id = ids.new_id(ids.SNAPSHOT)
        snapshot_rows.append(
            {
                "snapshot_id": snapshot_id,
                "account_id": created.id,
                "region": REGION,
                "instance_id": owner["instance_id"],
                "disk_id": disk_rows[n % n_instances]["disk_id"],
                "disk_size_gb": 1,
                "name": f"snap-{n}",
                "state": "NORMAL",
                "percent": 100,
                "latest_operation": "CreateInstanceSnapshot",
                "latest_operation_state": "SUCCESS",
                "latest_operation_request_id": str(uuid.uuid4()),
                "created_at": now - dt.timedelta(seconds=n_snapshots - n),
                "checksum": None,
                "corrupt": 0,
            }
        )
        if tagged:
            tag_rows.append({"resource_id": snapshot_id, "key": "env", "value": f"e{n % 10}"})
    _bulk(services, snapshots, snapshot_rows)
    _bulk(services, tags, tag_rows)
    return Seeded(
        key.secret_id,
        key.secret_key,
        created.id,
        [r["instance_id"] for r in instance_rows],
        [r["disk_id"] for r in disk_rows],
    )
