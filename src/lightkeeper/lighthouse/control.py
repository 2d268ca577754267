"""The control API's use cases (``serve --control-api``; always on in ``lightkeeper.testing``):
what a test does to the world around the API calls it checks.

``reset`` empties the world on the same server; ``seed`` makes ids and RequestIds repeat;
``timing`` changes pacing while the server runs, ``manual`` mode with ``advance`` lets a test
step an operation's Percent; ``fail_next`` arms faults; ``export_state``/``import_state`` move a
world as JSON. Setting up (accounts, sub-users, instances, disk bytes) goes through the same
AdminService as ``lightkeeper admin``, so both paths make identical worlds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lightkeeper import compute, storage
from lightkeeper.api.chaos import Target
from lightkeeper.domain import ids
from lightkeeper.lighthouse.admin import AdminService
from lightkeeper.lighthouse.world import World
from lightkeeper.store import reset as store_reset
from lightkeeper.store import resources as db
from lightkeeper.store.accounts import AccountStore
from lightkeeper.store.principals import UserStore

logger = logging.getLogger("lightkeeper.control")

_DELETERS = 8
KEPT_ACCOUNT = "default"
"""The account a reset keeps, with its root keys: the one ``client()`` uses by default."""


class ControlError(ValueError):
    """A control request that cannot be done as asked (answered 400 with the reason)."""


class Control:
    def __init__(self, admin: AdminService, accounts: AccountStore, default_blueprint: str) -> None:
        self.admin = admin
        self.default_blueprint = default_blueprint
        self.world: World = admin.world
        self.accounts = accounts
        self.users = UserStore(self.world.engine, accounts)
        self._initial_seconds = self.world.pacing.operation_seconds
        self._initial_transition = _transition(self.world.compute)

    # -- the world ----------------------------------------------------------------------------

    def reset(self) -> dict[str, Any]:
        """Everything but the kept account goes; pacing, faults and seeding return to how the
        server started. Jobs in flight lose their rows, so they commit nothing (fenced)."""
        started = time.perf_counter()
        world = self.world
        world.faults.clear()
        world.pacing.clear()
        world.pacing.set(operation_seconds=self._initial_seconds, manual=False)
        _set_transition(world.compute, self._initial_transition)
        ids.seed(None)
        if not any(a.name == KEPT_ACCOUNT for a in self.accounts.all()):
            self.accounts.create(KEPT_ACCOUNT)
        with world.write() as conn:
            doomed = store_reset.reset(conn, KEPT_ACCOUNT)
        # The data, after the commit, before answering: a seeded test makes the same ids
        # again at once. Each deletion waits for its own fsync, so they overlap.
        with ThreadPoolExecutor(_DELETERS) as pool:
            list(pool.map(lambda i: _quietly(world.compute.delete, i), doomed.instance_ids))
            list(pool.map(lambda r: _quietly(world.storage.delete_snapshot, *r), doomed.snapshots))
        with ThreadPoolExecutor(_DELETERS) as pool:  # (a disk after its snapshots)
            list(pool.map(lambda d: _quietly(world.storage.delete_disk, d), doomed.disk_ids))
        return {
            "Instances": len(doomed.instance_ids),
            "Snapshots": len(doomed.snapshots),
            "Milliseconds": round((time.perf_counter() - started) * 1000, 1),
        }

    def seed(self, seed: int | None) -> None:
        ids.seed(seed)

    def timing(
        self,
        operation_seconds: float | None = None,
        transition_seconds: float | None = None,
        manual: bool | None = None,
    ) -> dict[str, Any]:
        try:
            self.world.pacing.set(operation_seconds, manual)
        except ValueError as exc:
            raise ControlError(str(exc)) from None
        if transition_seconds is not None:
            if not 0 <= transition_seconds <= 3600:
                raise ControlError("transition_seconds must be 0..3600")
            if not _set_transition(self.world.compute, transition_seconds):
                raise ControlError("this compute driver's transitions take what they take")
        pacing = self.world.pacing
        return {
            "OperationSeconds": pacing.operation_seconds,
            "TransitionSeconds": _transition(self.world.compute),
            "Manual": pacing.manual,
        }

    def advance(self, snapshot_id: str, percent: int) -> None:
        with self.world.read() as conn:
            if db.get_snapshot(conn, snapshot_id) is None:
                raise ControlError(f"snapshot {snapshot_id} does not exist")
        try:
            self.world.pacing.advance(snapshot_id, percent)
        except ValueError as exc:
            raise ControlError(str(exc)) from None

    def fail_next(
        self, action: str, code: str | None, count: int, target: Target, delay: float
    ) -> None:
        from lightkeeper.api.chaos import FaultError

        try:
            self.world.faults.arm(target, action, code, count, delay)
        except FaultError as exc:
            raise ControlError(str(exc)) from None

    # -- setting up ---------------------------------------------------------------------------

    def create_account(self, name: str) -> dict[str, Any]:
        account, key = self.accounts.create(name)
        return _account_view(account.name, account.uin, account.app_id, [key])

    def credentials(self, name: str) -> dict[str, Any]:
        account = self.accounts.get(name)
        keys = [k for k in self.accounts.list_keys(name) if k.enabled]
        if not keys:
            keys = [self.accounts.create_key(name)]
        return _account_view(account.name, account.uin, account.app_id, keys)

    def create_user(self, account: str, name: str, policy: Any | None) -> dict[str, Any]:
        user = self.users.create(account, name)
        if policy is not None:
            self.users.attach_policy(account, name, policy, "default")
        key = self.users.create_key(account, name)
        return {"Account": account, "User": name, "Uin": user.uin, **_key_view(key)}

    # -- the world as JSON --------------------------------------------------------------------

    def export_state(self) -> dict[str, Any]:
        """Accounts (with their root keys: the endpoint is behind the control token), their
        instances and, for reading, their snapshots. Disk bytes are not exported: a state
        file stays small, and an imported disk starts from its blueprint."""
        accounts = []
        for account in self.accounts.all():
            keys = self.accounts.list_keys(account.name)
            accounts.append(_account_view(account.name, account.uin, account.app_id, keys))
        with self.world.read() as conn:
            instances = [
                {
                    "InstanceId": i.instance_id,
                    "Account": _account_name(self.accounts, i.account_id),
                    "Region": i.region,
                    "Zone": i.zone,
                    "InstanceName": i.name,
                    "BlueprintId": i.blueprint_id,
                    "BundleType": i.bundle_type,
                    "InstanceState": str(i.state),
                    "DiskSizeGb": i.system_disk.size_gb if i.system_disk else None,
                    "Tags": i.tags,
                }
                for i in db.all_instances(conn)
            ]
            snapshots = [
                {
                    "SnapshotId": s.snapshot_id,
                    "InstanceId": s.instance_id,
                    "SnapshotName": s.name,
                    "SnapshotState": str(s.state),
                }
                for s in db.all_snapshots(conn)
            ]
        return {"Version": 1, "Accounts": accounts, "Instances": instances, "Snapshots": snapshots}

    def import_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """Add the accounts and instances of an exported state, keeping the instance ids
        (a test's fixture file names them). Accounts get new keys (``credentials``), disks
        are made from their blueprints, and snapshots are not imported: take them through
        the API, so their data is the disk's real bytes at that moment."""
        if not isinstance(state, dict) or state.get("Version") != 1:
            raise ControlError('not a Lightkeeper state (expected "Version": 1)')
        if state.get("Snapshots"):
            raise ControlError(
                "snapshots are not imported (their data would be a guess): remove them from "
                "the state and take them through CreateInstanceSnapshot"
            )
        existing = {a.name for a in self.accounts.all()}
        try:
            for account in state.get("Accounts", []):
                if account["Account"] not in existing:
                    self.create_account(account["Account"])
                    existing.add(account["Account"])
            made = []
            for instance in state.get("Instances", []):
                made.append(
                    self.admin.create_instance(
                        instance["Account"],
                        instance["Region"],
                        zone=instance.get("Zone"),
                        name=instance.get("InstanceName"),
                        disk_size_gb=instance.get("DiskSizeGb") or 40,
                        bundle_type=instance.get("BundleType") or "GENERAL_BUNDLE",
                        state=instance.get("InstanceState") or "RUNNING",
                        blueprint_id=instance.get("BlueprintId") or self.default_blueprint,
                        tags=instance.get("Tags") or {},
                        instance_id=instance.get("InstanceId"),
                    )["InstanceId"]
                )
        except (KeyError, TypeError) as exc:
            raise ControlError(f"malformed state: missing or bad {exc}") from None
        return {"InstanceIds": made}


def _quietly(delete: Callable[..., None], *args: str) -> None:
    """A reset deletes what it can: a disk already gone, or a driver error, is logged."""
    try:
        delete(*args)
    except (storage.StorageError, compute.ComputeError, OSError) as exc:
        logger.warning("reset: could not delete %s: %s", args, exc)


def _key_view(key: Any) -> dict[str, Any]:
    return {"SecretId": key.secret_id, "SecretKey": key.secret_key}


def _account_view(name: str, uin: str, app_id: int, keys: list[Any]) -> dict[str, Any]:
    return {
        "Account": name,
        "Uin": uin,
        "AppId": app_id,
        "Keys": [_key_view(k) for k in keys],
    }


def _account_name(accounts: AccountStore, account_id: int) -> str:
    return next(a.name for a in accounts.all() if a.id == account_id)


def _transition(driver: compute.ComputeDriver) -> float | None:
    value = getattr(driver, "transition_seconds", None)
    return float(value) if isinstance(value, int | float) else None


def _set_transition(driver: compute.ComputeDriver, seconds: float | None) -> bool:
    if seconds is None or not hasattr(driver, "transition_seconds"):
        return False
    driver.transition_seconds = seconds
    return True
