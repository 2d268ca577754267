"""Operator use cases behind ``lightkeeper admin``: build a world of instances and disks.

They run in the CLI's own process against the same database and drivers as the server, and
respect the same locks: a disk that an operation holds cannot be written or resized. Nothing
here copies data inside a database transaction: a new instance is reserved in one short
transaction, its disk made outside any, then committed in another (``pending_instances``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import logging
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from lightkeeper import compute, storage
from lightkeeper.domain import ids
from lightkeeper.domain.model import (
    BUNDLE_TYPES,
    STORAGE_BUNDLE,
    Disk,
    DiskUsage,
    GiB,
    Instance,
    InstanceState,
    RestrictState,
)
from lightkeeper.lighthouse.scrub import Copy, Scrubber, Verdict, find_copy
from lightkeeper.lighthouse.views import instance_view
from lightkeeper.lighthouse.world import World
from lightkeeper.regions import Region
from lightkeeper.storage.images import image_info
from lightkeeper.store import checks, nodes
from lightkeeper.store import resources as db
from lightkeeper.store.accounts import AccountStore
from lightkeeper.store.database import StoreUnavailable

logger = logging.getLogger("lightkeeper.admin")

INSTANCE_CREATE_STATES = ("RUNNING", "STOPPED", "PENDING", "SHUTDOWN")
BUNDLES = {
    "GENERAL_BUNDLE": ("bundle_gen_lin_02", 2, 4),
    STORAGE_BUNDLE: ("bundle_bw_lin_02", 2, 4),
}


class AdminError(Exception):
    """A refused admin operation; the message is shown to the operator as is."""


class AdminService:
    def __init__(self, world: World, accounts: AccountStore, regions: tuple[Region, ...]) -> None:
        self.world = world
        self.accounts = accounts
        self.regions = {r.region: r for r in regions}

    # -- instances ----------------------------------------------------------------------------

    def create_instance(
        self,
        account_name: str,
        region: str,
        *,
        zone: str | None = None,
        name: str | None = None,
        disk_size_gb: int = 40,
        bundle_type: str = "GENERAL_BUNDLE",
        state: str = "RUNNING",
        blueprint_id: str,
        tags: dict[str, str] | None = None,
        base_image: Path | None = None,
        node: str | None = None,
        instance_id: str | None = None,
    ) -> dict[str, Any]:
        """``node``: the node to place it on (default: ``nodes.least_loaded``);
        ``instance_id``: the id to give it (a state import), else a new one."""
        if instance_id is not None and not ids.is_valid(ids.INSTANCE, instance_id):
            raise AdminError(f"{instance_id!r} is not an instance id (lhins- + 8 of [a-z0-9])")
        account = self.accounts.get(account_name)
        if region not in self.regions:
            raise AdminError(f"unknown region {region!r}")
        zones = self.regions[region].zone_ids()
        zone = zone or zones[0]
        if zone not in zones:
            raise AdminError(f"zone {zone!r} is not in {region} ({', '.join(zones)})")
        if bundle_type not in BUNDLE_TYPES:
            raise AdminError(f"bundle type must be one of {', '.join(BUNDLE_TYPES)}")
        if state not in INSTANCE_CREATE_STATES:
            raise AdminError(f"state must be one of {', '.join(INSTANCE_CREATE_STATES)}")
        if not 1 <= disk_size_gb <= 16384:
            raise AdminError("disk size must be between 1 and 16384 GB")
        bundle_id, cpu, memory = BUNDLES[bundle_type]
        pool = self.world.storage.pool
        node = self._placement(node, pool)
        now = db.utcnow()
        with self.world.write() as conn:  # short: check and reserve; nothing copied here
            image = db.get_blueprint(conn, blueprint_id)
            if image is None:
                raise AdminError(f"blueprint {blueprint_id!r} does not exist")
            if instance_id is None:
                instance_id = _unused(lambda c: db.get_instance(conn, c) is not None, ids.INSTANCE)
            elif db.get_instance(conn, instance_id) is not None:
                raise AdminError(f"instance {instance_id} already exists")
            instance = Instance(
                instance_id=instance_id,
                account_id=account.id,
                region=region,
                zone=zone,
                name=(name or instance_id)[:60],
                bundle_id=bundle_id,
                bundle_type=bundle_type,
                cpu=cpu,
                memory=memory,
                blueprint_id=blueprint_id,
                state=InstanceState(state),
                restrict_state=RestrictState.NORMAL,
                uuid=ids.new_uuid(),
                private_ip=_address("10.0.0.0/8"),
                public_ip=_address("43.128.0.0/10"),
                created_at=now,
                expired_at=now + dt.timedelta(days=365),
                latest_operation=None,
                latest_operation_state=None,
                latest_operation_request_id=None,
                latest_operation_started_at=None,
                op_job=None,
                node=node,
                system_disk=Disk(
                    disk_id=ids.new_id(ids.DISK),
                    account_id=account.id,
                    region=region,
                    zone=zone,
                    instance_id=instance_id,
                    disk_usage=DiskUsage.SYSTEM_DISK,
                    size_gb=disk_size_gb,
                    op_job=None,
                    created_at=now,
                    pool=pool,
                ),
                tags=dict(tags or {}),
            )
            db.reserve_instance(conn, instance_id, instance.disk_id)
        base = base_image or (Path(image["image_path"]) if image["image_path"] else None)
        try:
            # Outside every transaction: a copy takes as long as the image is big, and the
            # database's writers (API creates included) must not wait for it.
            self.world.storage.create_disk(instance.disk_id, disk_size_gb * GiB, base)
            self._register(instance, state)
            with self.world.write() as conn:
                if not db.release_reservation(conn, instance_id):
                    raise AdminError(
                        f"instance {instance_id} was abandoned while its disk was being made "
                        "(a server start took this command for dead): try again"
                    )
                db.insert_instance(conn, instance)
        except BaseException:
            undo_creation(self.world, instance_id, instance.disk_id)
            raise
        return self.describe_instance(instance_id)

    def import_instance(
        self, account_name: str, region: str, disk: Path, **options: Any
    ) -> dict[str, Any]:
        """An instance whose system disk starts as a copy of an existing VM disk image."""
        image_format, virtual_size = image_info(disk)
        if image_format != "raw" and not self.world.storage.capabilities.converts_images:
            raise AdminError(f"{disk} is {image_format}: serve with --storage qcow2 to import it")
        size_gb = max(options.pop("disk_size_gb", 1), -(-virtual_size // GiB))
        return self.create_instance(
            account_name, region, disk_size_gb=size_gb, base_image=disk, **options
        )

    def describe_instance(self, instance_id: str) -> dict[str, Any]:
        """The API's view, and where it lives: its node and its disk's pool."""
        with self.world.read() as conn:
            instance = self._instance(conn, instance_id)
            view = instance_view(instance, db.get_blueprint(conn, instance.blueprint_id))
        return {**view, "Node": instance.node, "Pool": instance.system_disk.pool}

    def delete_instance(self, instance_id: str) -> list[str]:
        """Deletes the instance and, as the real service does, all its snapshots."""
        with self.world.write() as conn:
            instance = self._instance(conn, instance_id)
            self._require_idle(instance)
            removed = [s.snapshot_id for s in db.snapshots_of_instance(conn, instance_id)]
            db.delete_snapshots(conn, removed)
            db.delete_instance(conn, instance_id)
        self.world.compute.delete(instance_id)  # its machine lets go of the disk first
        for snapshot_id in removed:
            self.world.storage.delete_snapshot(instance.disk_id, snapshot_id)
        self.world.storage.delete_disk(instance.disk_id)
        return removed

    def resize_disk(self, instance_id: str, size_gb: int) -> dict[str, Any]:
        with self.world.write() as conn:
            instance = self._instance(conn, instance_id)
            self._require_idle(instance)
            if size_gb < instance.disk_size_gb:
                raise AdminError("a system disk can only grow")
            self.world.storage.resize_disk(instance.disk_id, size_gb * GiB)
            db.update_disk(conn, instance.disk_id, size_gb=size_gb)
        return self.describe_instance(instance_id)

    def restrict(self, instance_id: str, restricted: bool = True) -> dict[str, Any]:
        with self.world.write() as conn:
            self._instance(conn, instance_id)
            state = RestrictState.RESOURCE_RESTRICT if restricted else RestrictState.NORMAL
            db.update_instance(conn, instance_id, restrict_state=state)
        return self.describe_instance(instance_id)

    def set_state(self, instance_id: str, state: str) -> dict[str, Any]:
        """Put an idle instance into STATE (its machine follows: running only if RUNNING)."""
        if state not in INSTANCE_CREATE_STATES:
            raise AdminError(f"state must be one of {', '.join(INSTANCE_CREATE_STATES)}")
        with self.world.write() as conn:
            instance = self._instance(conn, instance_id)
            self._require_idle(instance)
            db.update_instance(conn, instance_id, state=InstanceState(state))
            self._register(instance, state)
        return self.describe_instance(instance_id)

    def move_instance(self, instance_id: str, node: str) -> dict[str, Any]:
        """Place an idle STOPPED instance on another node that reaches its disk's pool (its
        next StartInstances runs there). Only with a shared pool (Ceph): local disks stay
        with the host whose data dir holds them."""
        target = nodes.get_node(self.world.engine, node)
        if target is None:
            raise AdminError(f"no node {node!r} (admin node list shows them)")
        with self.world.write() as conn:
            instance = self._instance(conn, instance_id)
            self._require_idle(instance)
            if instance.state != InstanceState.STOPPED:
                raise AdminError(f"{instance_id} is {instance.state}: stop it first")
            if not self.world.storage.capabilities.shared_pool:
                raise AdminError(f"{instance_id}'s disk is local to its node's data dir")
            if target.pool != instance.system_disk.pool:
                raise AdminError(f"node {node!r} does not reach the pool of {instance_id}'s disk")
            db.update_instance(conn, instance_id, node=node)
        return self.describe_instance(instance_id)

    # -- disks and snapshots ---------------------------------------------------------------------

    def write_disk(self, disk_ref: str, offset: int, data: bytes) -> None:
        """``disk_ref``: see ``find_disk``."""
        disk = self.find_disk(disk_ref)
        if disk.busy:
            raise AdminError(f"{disk_ref} has an operation in progress")
        self.world.storage.write(disk.disk_id, offset, data)

    def read_disk(self, disk_ref: str, offset: int, length: int) -> bytes:
        return self.world.storage.read(self.find_disk(disk_ref).disk_id, offset, length)

    def disk_sha256(self, disk_ref: str) -> str:
        return self.world.storage.disk_sha256(self.find_disk(disk_ref).disk_id)

    def disk_checksum(self, disk_ref: str) -> str:
        return self.world.storage.disk_checksum(self.find_disk(disk_ref).disk_id)

    def find_disk(self, disk_ref: str) -> Disk:
        """An instance id (its system disk) or a disk id: DescribeInstances shows the
        ``lhdisk-`` id next to the instance, and both are what a user has at hand."""
        with self.world.read() as conn:
            if not disk_ref.startswith(f"{ids.DISK}-"):
                return self._instance(conn, disk_ref).system_disk
            disk = db.get_disk(conn, disk_ref)
        if disk is None:
            raise AdminError(f"disk {disk_ref!r} does not exist")
        return disk

    def snapshot_sha256(self, snapshot_id: str) -> dict[str, Any]:
        """The snapshot data's plain sha256 (comparable with ``disk sha256``), and whether the
        data still matches the checksum recorded when it was taken."""
        found = self._taken_copy(snapshot_id)
        if found.checksum is None:  # still being copied
            return {"SnapshotId": snapshot_id, "Sha256": None, "Checksum": None, "Verified": None}
        storage = self.world.storage
        return {
            "SnapshotId": snapshot_id,
            "Sha256": storage.snapshot_sha256(found.disk_id, snapshot_id),
            "Checksum": found.checksum,
            "Verified": storage.snapshot_checksum(found.disk_id, snapshot_id) == found.checksum,
        }

    def snapshot_checksum(self, snapshot_id: str) -> dict[str, Any]:
        """The block checksum of the snapshot's data as stored now (comparable with ``disk
        checksum``, and hole-cheap where sha256 is not), and the one recorded at creation."""
        found = self._taken_copy(snapshot_id)
        if found.checksum is None:
            return {"SnapshotId": snapshot_id, "Actual": None, "Checksum": None, "Verified": None}
        actual = self.world.storage.snapshot_checksum(found.disk_id, snapshot_id)
        return {
            "SnapshotId": snapshot_id,
            "Actual": actual,
            "Checksum": found.checksum,
            "Verified": actual == found.checksum,
        }

    def _taken_copy(self, snapshot_id: str) -> Copy:
        """The snapshot's record, or the disk backup's (``lhbak-``: its data is a snapshot of
        its data disk), as the scrubber finds it; AdminError if there is none."""
        with self.world.read() as conn:
            found = find_copy(conn, snapshot_id)
        if found is None:
            raise AdminError(f"snapshot {snapshot_id!r} does not exist")
        return found

    def verifiable_snapshots(self) -> list[str]:
        """Every snapshot ``verify_snapshot`` can read back here (NORMAL, with a checksum, not
        yet marked corrupt, on this data dir's pool), longest unverified first."""
        later = db.utcnow() + dt.timedelta(days=1)
        with self.world.read() as conn:
            due = checks.due(conn, self.world.storage.pool, later, limit=1_000_000)
        return [item.snapshot_id for item in due]

    def check_verifiable(self, snapshot_id: str) -> None:
        """AdminError unless the snapshot (or disk backup) exists and has its checksum."""
        snapshot = self._taken_copy(snapshot_id)
        if snapshot.checksum is None:
            raise AdminError(f"snapshot {snapshot_id!r} is still being taken")

    def verify_snapshot(self, snapshot_id: str, progress: storage.ProgressCallback) -> Verdict:
        """Read the snapshot back whole now (no bandwidth limit), as the scrubber does: a
        mismatch marks it corrupt, and the check is recorded."""
        self.check_verifiable(snapshot_id)
        return Scrubber(self.world, 0, 1).verify(snapshot_id, progress)

    # -- blueprints ------------------------------------------------------------------------------

    def create_blueprint(
        self, name: str, os_name: str, platform: str, platform_type: str, image: Path | None
    ) -> dict[str, Any]:
        if image is not None and not image.is_file():
            raise AdminError(f"image {image} is not a file")
        with self.world.write() as conn:
            blueprint_id = _unused(lambda c: db.get_blueprint(conn, c) is not None, ids.BLUEPRINT)
            image_path = str(image.resolve()) if image else None
            db.insert_blueprint(
                conn, blueprint_id, name, os_name, platform, platform_type, image_path
            )
            found = db.get_blueprint(conn, blueprint_id)
        return _blueprint_view(found or {})

    def list_blueprints(self) -> list[dict[str, Any]]:
        with self.world.read() as conn:
            return [_blueprint_view(b) for b in db.list_blueprints(conn)]

    def delete_blueprint(self, blueprint_id: str) -> None:
        with self.world.write() as conn:
            if not db.delete_blueprint(conn, blueprint_id):
                raise AdminError(f"blueprint {blueprint_id!r} does not exist")

    # -- helpers ---------------------------------------------------------------------------------

    def _placement(self, node: str | None, pool: str) -> str | None:
        """The node a new instance whose disk is made in ``pool`` goes to: ``node`` if it
        reaches that pool, else (a shared pool) the node of this data dir, else the least
        loaded UP node of the pool (None: none is UP, the instance is not placed and any node
        runs it)."""
        engine = self.world.engine
        if node is None and self.world.storage.capabilities.shared_pool:
            # Every node reaches a shared pool, but the machine is registered with this data
            # dir's compute driver: the instance lives with this data dir's node.
            here = self.world.node
            if here is not None and nodes.get_node(engine, here) is not None:
                return here
        if node is None:
            return nodes.least_loaded(engine, pool)
        found = nodes.get_node(engine, node)
        if found is None:
            known = ", ".join(n.name for n in nodes.list_nodes(engine)) or "none"
            raise AdminError(f"unknown node {node!r} (nodes of this database: {known})")
        if found.pool is not None and found.pool != pool:
            raise AdminError(
                f"node {node!r} reaches storage pool {found.pool}, not {pool} where this "
                "command makes the disk: run it with that node's --data-dir"
            )
        return node

    def _register(self, instance: Instance, state: str) -> None:
        """Tell the compute driver about the instance and the power state it should be in."""
        self.world.compute.create(
            instance.instance_id,
            "RUNNING" if state == "RUNNING" else "STOPPED",
            self.world.storage.attachment(instance.disk_id),
        )

    @staticmethod
    def _instance(conn: Any, instance_id: str) -> Instance:
        instance = db.get_instance(conn, instance_id)
        if instance is None:
            raise AdminError(f"instance {instance_id!r} does not exist")
        return instance

    @staticmethod
    def _require_idle(instance: Instance, disk_only: bool = False) -> None:
        if instance.disk_busy or (not disk_only and instance.op_job is not None):
            raise AdminError(f"instance {instance.instance_id} has an operation in progress")


def undo_creation(world: World, instance_id: str, disk_id: str, release: bool = True) -> None:
    """Best effort: remove what an unfinished create made (machine, disk), then its
    reservation. What cannot be removed now is logged; the reservation then stays, so the
    next server start tries again."""
    try:
        world.compute.delete(instance_id)
        world.storage.delete_disk(disk_id)
    except (compute.ComputeError, storage.StorageError) as exc:
        logger.warning("instance %s: unfinished disk %s kept: %s", instance_id, disk_id, exc)
        return
    if release:
        try:
            with world.write() as conn:
                db.release_reservation(conn, instance_id)
        except (SQLAlchemyError, StoreUnavailable) as exc:
            logger.warning("instance %s: reservation kept for now: %s", instance_id, exc)


def abandon_unfinished_creations(world: World) -> list[str]:
    """At server start: undo creates whose admin process died between reserving the instance
    and committing it (the reservation proves the disk belongs to no instance). A disk still
    being copied is locked by its creator and left alone; a creator that is alive but between
    two steps finds its reservation gone and fails cleanly instead of committing."""
    with world.read() as conn:
        pending = db.reservations(conn)
    abandoned = []
    for instance_id, disk_id in pending:
        try:
            with world.storage.lock_disk(disk_id):
                pass
        except storage.DiskBusy:
            continue  # its creator is copying right now
        with world.write() as conn:
            if not db.release_reservation(conn, instance_id):
                continue  # finished (or undone) meanwhile
        undo_creation(world, instance_id, disk_id, release=False)
        abandoned.append(instance_id)
    return abandoned


def _unused(taken: Any, prefix: str) -> str:
    while True:
        candidate = ids.new_id(prefix)
        if not taken(candidate):
            return candidate


def _address(network: str) -> str:
    net = ipaddress.ip_network(network)
    return str(net.network_address + 1 + ids.random_below(net.num_addresses - 2))


def _blueprint_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "BlueprintId": row.get("blueprint_id"),
        "BlueprintName": row.get("name"),
        "OsName": row.get("os_name"),
        "Platform": row.get("platform"),
        "PlatformType": row.get("platform_type"),
        "ImagePath": row.get("image_path"),
        "Public": row.get("account_id") is None,
    }


def demo_pattern(label: str, size: int) -> bytes:
    """Deterministic bytes for the demo disks, so their checksums are reproducible."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{label}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])
