"""Concurrency storm: many clients mixing every action against a few instances.

    .venv/bin/python tools/storm.py --clients 200 --seconds 60 [--storage qcow2]
                                    [--rate-limit] [--stalls N [--job-lease-seconds S]] [--json]

Starts a dedicated ``lightkeeper serve`` (``--no-rate-limit`` unless ``--rate-limit``,
``--transition-seconds 0.2 --operation-seconds 0.3``), three accounts and six instances, then
runs ``--clients`` threads, each sending correctly signed raw requests (TC3 JSON POST, v1 form
POST, v1 GET; signed with the SDK's ``Sign``) for every implemented action. Afterwards it checks
the invariants (see ``check_*``) and prints the numbers; exit status 1 on any violation.
Each account also has a data disk (backup quota 2) in ap-guangzhou that the clients attach,
detach and back up, apply and delete the backups of (issue #18): the disk and backup jobs
contend for the same locks as the snapshot and power jobs.
``--stalls N`` adds the stalled-owner fault: a second server on the same data dir (the clients
spread over both), and N times the owner of a running job SIGSTOPped past its lease, then
resumed (testkit/stall.py). ``--database postgresql`` keeps the records in a PostgreSQL server
the storm starts itself, ``--nodes N`` runs N servers on the one database and data dir, and
``--database-restarts N`` restarts PostgreSQL (``pg_ctl restart``) N times in the middle of
the storm (issue #13). ``tests/reliability/test_storm.py`` runs the same engine at CI size.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import random
import secrets
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.exc import DBAPIError
from tencentcloud.common.sign import Sign

from testkit import postgres
from testkit.clients import tc3_headers
from testkit.datadir import (
    FinishedJobs,
    Store,
    job_rows,
    owner_pid,
    read_only,
    running_jobs,
    snapshot_records,
    stored_snapshots,
)
from testkit.server import Account, Server, free_port
from testkit.stall import LEASE_ENV, Stall, extra_seconds, stall_owner

VERSION = "2020-03-24"
ACTIONS = (  # the seed's actions, then the data-disk and disk-backup ones that share their locks
    "DescribeRegions",
    "DescribeZones",
    "CreateInstanceSnapshot",
    "ApplyInstanceSnapshot",
    "DescribeSnapshots",
    "DeleteSnapshots",
    "ModifySnapshotAttribute",
    "DescribeSnapshotsDeniedActions",
    "DescribeInstances",
    "DescribeInstancesDeniedActions",
    "StartInstances",
    "StopInstances",
    "RebootInstances",
    "DescribeGeneralResourceQuotas",
    "DescribeDisks",
    "AttachDisks",
    "DetachDisks",
    "CreateDiskBackup",
    "ApplyDiskBackup",
    "DescribeDiskBackups",
    "DeleteDiskBackups",
    "ModifyDiskBackupsAttribute",
    "DescribeDiskBackupsDeniedActions",
)
WEIGHTS = {  # mutating actions more often, so that locks and quota are contended
    "CreateInstanceSnapshot": 6,
    "ApplyInstanceSnapshot": 4,
    "DeleteSnapshots": 1,
    "StartInstances": 3,
    "StopInstances": 3,
    "RebootInstances": 3,
    "ModifySnapshotAttribute": 2,
    "DescribeSnapshots": 2,
    "DescribeInstances": 2,
    "AttachDisks": 2,
    "DetachDisks": 2,
    "CreateDiskBackup": 3,
    "ApplyDiskBackup": 2,
}
# (account index, region, initial state) for each instance
LAYOUT = (
    (0, "ap-guangzhou", "RUNNING"),
    (0, "ap-guangzhou", "STOPPED"),
    (0, "ap-guangzhou", "RUNNING"),
    (1, "ap-guangzhou", "RUNNING"),
    (1, "ap-shanghai", "STOPPED"),
    (2, "ap-guangzhou", "RUNNING"),
)
QUOTA_PER_INSTANCE = 2  # the server's defaults (--snapshot-quota-per-instance / -max)
QUOTA_MAX = 10
BACKUP_QUOTA = 2  # each data disk's DiskBackupQuota
DISK_REGION = "ap-guangzhou"  # where each account's data disk is (every account has an
# instance there to attach it to)
DISK_JOBS = frozenset({"CreateDisks", "AttachDisks", "DetachDisks", "CreateDiskBackup",
                       "ApplyDiskBackup"})  # fmt: skip
"""Job kinds that hold a data disk (``disks.op_job``); ApplyDiskBackup holds its instance
too when the disk is attached."""
COVER_FACTOR = 4  # how much longer than asked a ``cover`` storm may run

LOCK_CODES = {
    "UnsupportedOperation.LatestOperationUnfinished",
    "UnsupportedOperation.DiskLatestOperationUnfinished",
    "OperationDenied.InstanceOperationInProgress",
}


def documented_codes() -> set[str]:
    text = resources.files("lightkeeper.catalogue").joinpath("errors.json").read_text("utf-8")
    return {entry["code"] for entry in json.loads(text).values()}


DOCUMENTED = documented_codes()


# -- signing (the SDK's own Sign helpers) -----------------------------------------------------


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """The SDK's flattening for GET and v1: ``A.0.B=x``; booleans as ``True``/``False``."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, list):
            flat.update(flatten({str(i): v for i, v in enumerate(value)}, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


def v1_params(
    account: Account,
    host: str,
    action: str,
    flat: dict[str, str],
    region: str | None,
    *,
    method: str,
    sign_method: str,
    declared_method: str | None = None,
    language: str = "en-US",
) -> dict[str, str]:
    """Common parameters plus ``Signature`` (signed with ``sign_method``; ``SignatureMethod``
    says ``declared_method``, the same unless a test mixes them up)."""
    full = {
        **flat,
        "Action": action,
        "Nonce": str(1 + secrets.randbelow(2**31 - 1)),  # not `random`: hypothesis seeds it
        "Timestamp": str(int(time.time())),
        "Version": VERSION,
        "SecretId": account.secret_id,
        "SignatureMethod": declared_method or sign_method,
        "Language": language,
    }
    if region:
        full["Region"] = region
    # As the SDK's ``_format_sign_string``: ``_`` in a key is signed as ``.``.
    formatted = {k.replace("_", "."): v for k, v in full.items()}
    text = "&".join(f"{k}={formatted[k]}" for k in sorted(formatted))
    full["Signature"] = Sign.sign(account.secret_key, f"{method}{host}/?{text}", sign_method)
    return full


def signed_request(
    http: httpx.Client,
    account: Account,
    host: str,
    action: str,
    params: dict[str, Any],
    region: str | None,
    transport: str = "tc3",
) -> httpx.Response:
    """One correctly signed request over ``transport``: ``tc3``, ``v1-post`` or ``v1-get``."""
    if transport == "tc3":
        body = json.dumps(params).encode()
        headers = tc3_headers(account, host, action, body, region)
        return http.post("/", content=body, headers=headers)
    method = "POST" if transport == "v1-post" else "GET"
    sign_method = "HmacSHA256" if transport == "v1-post" else "HmacSHA1"
    full = v1_params(
        account, host, action, flatten(params), region, method=method, sign_method=sign_method
    )
    encoded = urllib.parse.urlencode(full)
    if method == "GET":
        return http.get(f"/?{encoded}")
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    return http.post("/", content=encoded, headers=form)


# -- the envelope invariant ---------------------------------------------------------------------


def envelope_problem(response: httpx.Response) -> str | None:
    """None if ``response`` is a well-formed API answer, else what is wrong with it."""
    if response.status_code != 200:
        return f"HTTP {response.status_code}"
    if response.headers.get("content-type") != "application/json":
        return f"content-type {response.headers.get('content-type')!r}"
    try:
        document = response.json()
    except ValueError:
        return "body is not JSON"
    if not isinstance(document, dict) or list(document) != ["Response"]:
        return "not a {Response: ...} document"
    body = document["Response"]
    if not isinstance(body, dict):
        return "Response is not an object"
    request_id = body.get("RequestId")
    try:
        parsed = uuid.UUID(str(request_id))
    except ValueError:
        return f"RequestId {request_id!r} is not a uuid"
    if parsed.version != 4 or str(parsed) != request_id:
        return f"RequestId {request_id!r} is not a canonical uuid4"
    if "Error" in body:
        error = body["Error"]
        if not isinstance(error, dict) or set(error) != {"Code", "Message"}:
            return f"malformed Error {error!r}"
        if set(body) != {"Error", "RequestId"}:
            return f"error envelope with extra keys {sorted(body)}"
        if error["Code"] not in DOCUMENTED:
            return f"undocumented code {error['Code']!r}"
        if error["Code"] == "InternalError":
            return f"InternalError: {error['Message']}"
        if not isinstance(error["Message"], str) or not error["Message"]:
            return "empty Message"
    return None


def code_of(response: httpx.Response) -> str:
    """The error code, or ``"Success"``."""
    body = response.json()["Response"]
    return str(body["Error"]["Code"]) if "Error" in body else "Success"


# -- the world ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instance:
    instance_id: str
    account: int
    region: str


@dataclass(frozen=True)
class DataDisk:
    disk_id: str
    account: int
    region: str


@dataclass
class World:
    server: Server
    accounts: list[Account]
    instances: list[Instance]
    peers: list[Server] = field(default_factory=list)  # more servers on the same data dir
    disks: list[DataDisk] = field(default_factory=list)

    def servers(self) -> list[Server]:
        return [self.server, *self.peers]

    def store(self) -> Store:
        return Store(self.server.data_dir, self.server.database)

    def quota(self, account: int, region: str) -> int:
        count = sum(1 for i in self.instances if i.account == account and i.region == region)
        return min(QUOTA_PER_INSTANCE * count, QUOTA_MAX)

    def scopes(self) -> list[tuple[int, str]]:
        return sorted({(i.account, i.region) for i in self.instances})


def build_world(server: Server, layout: tuple[tuple[int, str, str], ...] = LAYOUT) -> World:
    names = [f"storm{n}-{uuid.uuid4().hex[:6]}" for n in range(1 + max(a for a, _, _ in layout))]

    def instance(index: int, region: str, state: str) -> Instance:
        data = server.admin(
            "instance",
            "create",
            "--account",
            names[index],
            "--region",
            region,
            "--disk-size",
            "1",
            "--state",
            state,
            "--json",
        )
        return Instance(str(data["InstanceId"]), index, region)

    with ThreadPoolExecutor(len(layout)) as pool:  # each admin command is a process
        accounts = list(pool.map(server.create_account, names))
        instances = list(pool.map(lambda spec: instance(*spec), layout))
        disks = list(pool.map(lambda n: data_disk(server, accounts[n], n), range(len(names))))
    return World(server, accounts, instances, disks=disks)


def data_disk(server: Server, account: Account, index: int) -> DataDisk:
    """The account's data disk, made through the API (CreateDisks), once UNATTACHED."""
    params = {
        "Zone": f"{DISK_REGION}-3",
        "DiskSize": 10,
        "DiskType": "CLOUD_PREMIUM",
        "DiskChargePrepaid": {"Period": 1},
        "DiskBackupQuota": BACKUP_QUOTA,
    }
    with httpx.Client(base_url=server.url, timeout=60) as http:
        created = signed_request(
            http, account, server.endpoint, "CreateDisks", params, DISK_REGION
        ).json()["Response"]
        (disk_id,) = created["DiskIdSet"]
        deadline = time.monotonic() + 30
        while True:
            described = signed_request(
                http, account, server.endpoint, "DescribeDisks", {"DiskIds": [disk_id]},
                DISK_REGION,
            ).json()["Response"]  # fmt: skip
            if [d["DiskState"] for d in described["DiskSet"]] == ["UNATTACHED"]:
                return DataDisk(disk_id, index, DISK_REGION)
            if time.monotonic() > deadline:
                raise AssertionError(f"{disk_id} not made within 30 s: {described}")
            time.sleep(0.1)


def storm_server(
    data_dir: Path,
    *,
    rate_limit: bool,
    storage: str = "raw",
    job_lease: float | None = None,
    database: str | None = None,
) -> Server:
    args = ["--storage", storage, "--transition-seconds", "0.2", "--operation-seconds", "0.3"]
    if not rate_limit:
        args.append("--no-rate-limit")
    env = {} if job_lease is None else {LEASE_ENV: str(job_lease)}
    return Server(data_dir, free_port(), tuple(args), env=env, database=database)


# -- the storm ----------------------------------------------------------------------------------


@dataclass
class Result:
    clients: int = 0
    seconds: float = 0.0
    storage: str = "raw"
    requests: int = 0
    by_code: Counter[str] = field(default_factory=Counter)
    by_action: Counter[tuple[str, str]] = field(default_factory=Counter)
    by_transport: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    quota_samples: int = 0
    jobs: Counter[str] = field(default_factory=Counter)
    stalls: list[Stall] = field(default_factory=list)
    paused: Counter[int] = field(default_factory=Counter)  # stops, by server port
    paused_internal_errors: Counter[int] = field(default_factory=Counter)  # by server port
    database: str = "sqlite"
    nodes: int = 1
    restarts: list[tuple[float, float]] = field(default_factory=list)  # (at, seconds) of each
    restart_internal_errors: Counter[tuple[int, str]] = field(default_factory=Counter)
    """InternalError answers of requests in flight in a database restart, by (port, action)."""
    restart_tracebacks: int = 0  # log tracebacks of a lost database connection
    restart_failed_reads: int = 0  # the checker's own reads cut by a restart
    answered_after_restart: Counter[int] = field(default_factory=Counter)  # by server port
    finished_jobs_watched: int = 0
    settle_seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def violation(self, text: str) -> None:
        with self.lock:
            if len(self.violations) < 1000:
                self.violations.append(text)

    def summary(self) -> dict[str, Any]:
        return {
            "storage": self.storage,
            "clients": self.clients,
            "seconds": round(self.seconds, 1),
            "requests": self.requests,
            "requests_per_second": round(self.requests / max(self.seconds, 1e-9)),
            "by_code": dict(self.by_code.most_common()),
            "by_transport": dict(self.by_transport),
            "successes_by_action": {a: self.by_action[(a, "Success")] for a in ACTIONS},
            "quota_samples": self.quota_samples,
            "jobs": dict(self.jobs),
            "stalls": [s.as_dict() for s in self.stalls],
            "internal_errors_of_requests_in_flight_in_a_pause": dict(self.paused_internal_errors),
            "database": self.database,
            "nodes": self.nodes,
            "database_restarts": [
                {"at_second": round(at, 1), "seconds": round(took, 2)} for at, took in self.restarts
            ],
            "internal_errors_of_requests_in_flight_in_a_restart": sum(
                self.restart_internal_errors.values()
            ),
            "internal_errors_in_a_restart_by_action": dict(
                sum(
                    (Counter({a: n}) for (_, a), n in self.restart_internal_errors.items()),
                    Counter(),
                )
            ),
            "tracebacks_of_lost_connections": self.restart_tracebacks,
            "checker_reads_cut_by_a_restart": self.restart_failed_reads,
            "successes_after_the_last_restart": dict(self.answered_after_restart),
            "finished_jobs_watched": self.finished_jobs_watched,
            "settle_seconds": round(self.settle_seconds, 1),
            "violations": len(self.violations),
            "first_violations": self.violations[:20],
        }


class Snapshots:
    """What the clients know about existing snapshots: id -> (account, region, instance)."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[int, str, str]] = {}
        self._lock = threading.Lock()

    def add(self, snapshot_id: str, account: int, region: str, instance_id: str) -> None:
        with self._lock:
            self._known[snapshot_id] = (account, region, instance_id)

    def remove(self, snapshot_ids: list[str]) -> None:
        with self._lock:
            for snapshot_id in snapshot_ids:
                self._known.pop(snapshot_id, None)

    def of(self, account: int) -> list[tuple[str, str, str]]:
        with self._lock:
            return [(s, r, i) for s, (a, r, i) in self._known.items() if a == account]


class Storm:
    def __init__(
        self,
        world: World,
        clients: int,
        seconds: float,
        seed: int = 0,
        stalls: int = 0,
        bursts: bool = False,
        restarts: int = 0,
        restart_database: Callable[[], None] | None = None,
        cover: bool = False,
    ) -> None:
        """``cover``: go on past ``seconds`` (up to COVER_FACTOR times as long) until every
        action has succeeded once: on a loaded machine a short storm may not get to all."""
        if restarts and restart_database is None:
            raise ValueError("database restarts need restart_database")
        self.world = world
        self.restarts = restarts
        self.restart_database = restart_database
        self.restarting: list[tuple[float, list[float]]] = []  # (began, [ended]) of each
        self.bursts = bursts
        self.clients = clients
        self.seconds = seconds
        self.cover = cover
        self.succeeded: set[str] = set()  # actions answered Success so far (for ``cover``)
        self.seed = seed
        self.stalls = stalls
        self.result = Result(clients=clients)
        self.snapshots = Snapshots()
        self.backups = Snapshots()  # (the same bookkeeping: id -> account, region, disk)
        self.stop = threading.Event()
        self.finished = FinishedJobs()
        self.observed_at = 0.0
        self.observe_lock = threading.Lock()
        self.pauses: list[tuple[int, float, list[float]]] = []  # (port, stopped, [resumed])

    # -- requests

    def request(
        self, rng: random.Random, account: int
    ) -> tuple[str, dict[str, Any], str | None, list[str]]:
        """(action, params, region, snapshot ids it refers to) for one random call."""
        world = self.world
        action = rng.choices(ACTIONS, [WEIGHTS.get(a, 1) for a in ACTIONS])[0]
        mine = [i for i in world.instances if i.account == account]
        target = rng.choice(mine)
        region: str | None = target.region
        known = self.snapshots.of(account)
        in_region = [s for s in known if s[1] == region]
        params: dict[str, Any] = {}
        ids: list[str] = []
        if action == "DescribeRegions":
            region = rng.choice([None, region])
        elif action == "DescribeZones":
            params = rng.choice([{}, {"Order": "DESC", "OrderField": "ZONE"}])
        elif action == "CreateInstanceSnapshot":
            params = {"InstanceId": target.instance_id}
            if rng.random() < 0.5:
                params["SnapshotName"] = f"storm-{rng.randrange(10**6)}"
            if rng.random() < 0.3:
                region = None  # found by ID in any region
        elif action == "ApplyInstanceSnapshot":
            if in_region:
                snapshot_id, _, instance_id = rng.choice(in_region)
                if rng.random() < 0.1:
                    instance_id = target.instance_id  # maybe another disk: SnapshotNotFound
                params = {"InstanceId": instance_id, "SnapshotId": snapshot_id}
                ids = [snapshot_id]
            else:
                params = {"InstanceId": target.instance_id, "SnapshotId": "lhsnap-00000000"}
        elif action == "DescribeSnapshots":
            choice = rng.randrange(3)
            if choice == 1 and in_region:
                params = {"SnapshotIds": [s for s, _, _ in rng.sample(in_region, 1)]}
            elif choice == 2:
                params = {"Filters": [{"Name": "instance-id", "Values": [target.instance_id]}]}
            params["Limit"] = 100
        elif action == "DeleteSnapshots":
            if in_region:
                chosen = rng.sample(in_region, min(len(in_region), rng.choice([1, 1, 2])))
                ids = [s for s, _, _ in chosen]
            else:
                ids = ["lhsnap-00000000"]
            params = {"SnapshotIds": ids}
        elif action == "ModifySnapshotAttribute":
            snapshot_id = rng.choice(in_region)[0] if in_region else "lhsnap-00000000"
            params = {"SnapshotId": snapshot_id, "SnapshotName": f"renamed-{rng.randrange(999)}"}
        elif action == "DescribeSnapshotsDeniedActions":
            params = {"SnapshotIds": [s for s, _, _ in in_region[:5]] or ["lhsnap-00000000"]}
        elif action == "DescribeInstances":
            params = rng.choice([{}, {"InstanceIds": [target.instance_id]}, {"Limit": 1}])
        elif action == "DescribeInstancesDeniedActions":
            params = {"InstanceIds": [target.instance_id]}
        elif action in ("StartInstances", "StopInstances", "RebootInstances"):
            same_region = [i.instance_id for i in mine if i.region == region]
            count = 2 if len(same_region) > 1 and rng.random() < 0.2 else 1
            params = {"InstanceIds": rng.sample(same_region, count)}
            if action == "StopInstances" and rng.random() < 0.5:
                params["StopType"] = rng.choice(["SOFT", "HARD", "SOFT_FIRST"])
        elif action == "DescribeGeneralResourceQuotas":
            params = {"ResourceNames": ["SNAPSHOT", "GENERAL_BUNDLE_INSTANCE"]}
        else:
            return self.disk_request(rng, account, action)
        return action, params, region, ids

    def disk_request(
        self, rng: random.Random, account: int, action: str
    ) -> tuple[str, dict[str, Any], str | None, list[str]]:
        """A data-disk or disk-backup action on the account's data disk (or its backups)."""
        (disk,) = [d for d in self.world.disks if d.account == account]
        backups = [b for b, _, _ in self.backups.of(account)]
        some = rng.sample(backups, min(len(backups), rng.choice([1, 1, 2]))) if backups else []
        params: dict[str, Any]
        if action == "DescribeDisks":
            params = rng.choice([{}, {"DiskIds": [disk.disk_id]}])
        elif action == "AttachDisks":
            hosts = [
                i.instance_id
                for i in self.world.instances
                if i.account == account and i.region == disk.region
            ]
            params = {"DiskIds": [disk.disk_id], "InstanceId": rng.choice(hosts)}
        elif action == "DetachDisks":
            params = {"DiskIds": [disk.disk_id]}
        elif action == "CreateDiskBackup":
            params = {"DiskId": disk.disk_id}
            if rng.random() < 0.5:
                params["DiskBackupName"] = f"storm-{rng.randrange(10**6)}"
        elif action == "ApplyDiskBackup":
            backup_id = rng.choice(backups) if backups else "lhbak-00000000"
            params = {"DiskId": disk.disk_id, "DiskBackupId": backup_id}
            some = [backup_id]
        elif action == "DescribeDiskBackups":
            choice = rng.randrange(3)
            if choice == 1 and some:
                params = {"DiskBackupIds": some}
            elif choice == 2:
                params = {"Filters": [{"Name": "disk-id", "Values": [disk.disk_id]}]}
            else:
                params = {"Limit": 100}
        elif action == "DeleteDiskBackups":
            some = some or ["lhbak-00000000"]
            params = {"DiskBackupIds": some}
        elif action == "ModifyDiskBackupsAttribute":
            some = some[:1] or ["lhbak-00000000"]
            params = {"DiskBackupIds": some, "DiskBackupName": f"renamed-{rng.randrange(999)}"}
        elif action == "DescribeDiskBackupsDeniedActions":
            some = some or ["lhbak-00000000"]
            params = {"DiskBackupIds": some}
        else:
            raise ValueError(f"no request for {action}")
        return action, params, disk.region, some

    def learn(
        self, account: int, action: str, params: dict[str, Any], region: str | None, reply: Any
    ) -> None:
        """Keep the shared snapshot list roughly current from the answers."""
        code = reply["Error"]["Code"] if "Error" in reply else "Success"
        if action == "CreateInstanceSnapshot" and code == "Success":
            instance = next(
                i for i in self.world.instances if i.instance_id == params["InstanceId"]
            )
            self.snapshots.add(reply["SnapshotId"], account, instance.region, instance.instance_id)
        elif action == "DeleteSnapshots" and code in (
            "Success",
            "ResourceNotFound.SnapshotIdNotFound",
        ):
            if code == "Success" or len(params["SnapshotIds"]) == 1:
                self.snapshots.remove(params["SnapshotIds"])
        elif action == "CreateDiskBackup" and code == "Success":
            self.backups.add(reply["DiskBackupId"], account, DISK_REGION, params["DiskId"])
        elif action == "DeleteDiskBackups" and code in (
            "Success",
            "ResourceNotFound.DiskBackupIdNotFound",
        ):
            if code == "Success" or len(params["DiskBackupIds"]) == 1:
                self.backups.remove(params["DiskBackupIds"])
        elif action == "DescribeDiskBackups" and code == "Success" and "Filters" in params:
            for item in reply["DiskBackupSet"]:
                self.backups.add(item["DiskBackupId"], account, DISK_REGION, item["DiskId"])
        elif action == "DescribeSnapshots" and code == "Success" and "Filters" in params:
            instance_id = params["Filters"][0]["Values"][0]  # the view has no InstanceId
            instance = next(i for i in self.world.instances if i.instance_id == instance_id)
            for item in reply["SnapshotSet"]:
                self.snapshots.add(item["SnapshotId"], account, instance.region, instance_id)

    def client(self, number: int) -> None:
        rng = random.Random(self.seed * 100_003 + number)
        world = self.world
        servers = world.servers()
        server = servers[number % len(servers)]  # spread over the servers of the data dir
        host = server.endpoint
        result = self.result
        codes: Counter[str] = Counter()
        actions: Counter[tuple[str, str]] = Counter()
        transports: Counter[str] = Counter()
        recovered = 0  # successes of requests sent after the last database restart
        with httpx.Client(base_url=server.url, timeout=60) as http:
            while not self.stop.is_set():
                account = rng.choices(range(len(world.accounts)), [3, 2, 1])[0]
                action, params, region, _ = self.request(rng, account)
                transport = rng.choices(["tc3", "v1-post", "v1-get"], [8, 1, 1])[0]
                sent = time.monotonic()
                try:
                    response = signed_request(
                        http, world.accounts[account], host, action, params, region, transport
                    )
                except httpx.HTTPError as exc:
                    result.violation(f"{action}: transport error {exc!r}")
                    codes["<transport error>"] += 1
                    continue
                problem = self.excuse(server, action, sent, envelope_problem(response))
                if problem is not None:
                    result.violation(f"{action} {params}: {problem}")
                    codes["<malformed>"] += 1
                    continue
                code = code_of(response)
                recovered += code == "Success" and self.after_restarts(sent)
                if code == "Success":
                    self.succeeded.add(action)
                codes[code] += 1
                actions[(action, code)] += 1
                transports[transport] += 1
                try:
                    self.learn(account, action, params, region, response.json()["Response"])
                except (KeyError, TypeError, StopIteration) as exc:
                    result.violation(f"{action} {params}: unexpected answer shape {exc!r}")
        with result.lock:
            result.by_code.update(codes)
            result.by_action.update(actions)
            result.by_transport.update(transports)
            result.requests += sum(codes.values())
            result.answered_after_restart[server.port] += recovered

    def burster(self) -> None:
        """With rate limits on: now and then 30 DescribeRegions of one principal at the start
        of a second, so the limit is passed however slowly the machine serves the storm (its
        own rate depends on the machine; the limit must still be seen to work)."""
        world = self.world
        key, host = world.accounts[0], world.server.endpoint

        def one(_: int) -> str:
            sent = time.monotonic()
            with httpx.Client(base_url=world.server.url, timeout=60) as http:
                response = signed_request(http, key, host, "DescribeRegions", {}, None)
            problem = self.excuse(world.server, "DescribeRegions", sent, envelope_problem(response))
            if problem is not None:
                self.result.violation(f"DescribeRegions (burst): {problem}")
                return "<malformed>"
            return code_of(response)

        with ThreadPoolExecutor(30) as pool:
            while not self.stop.wait(1.02 - time.time() % 1):
                codes = Counter(pool.map(one, range(30)))
                with self.result.lock:
                    self.result.by_code.update(codes)
                    self.result.requests += sum(codes.values())
                if self.stop.wait(1.0):
                    return

    def sampler(self) -> None:
        """Quota never exceeded, seen through the API while the storm runs."""
        world = self.world
        host = world.server.endpoint
        with httpx.Client(base_url=world.server.url, timeout=60) as http:
            while not self.stop.is_set():
                for account, region in world.scopes():
                    expected = world.quota(account, region)
                    key = world.accounts[account]
                    sent = time.monotonic()
                    reply = signed_request(
                        http,
                        key,
                        host,
                        "DescribeGeneralResourceQuotas",
                        {"ResourceNames": ["SNAPSHOT"]},
                        region,
                    )
                    listed = signed_request(
                        http, key, host, "DescribeSnapshots", {"Limit": 100}, region
                    )
                    for response in (reply, listed):
                        problem = self.excuse(
                            world.server, "sampler", sent, envelope_problem(response)
                        )
                        if problem is not None:
                            self.result.violation(f"quota sampler: {problem}")
                    quota_body = reply.json()["Response"]
                    if "Error" not in quota_body:
                        item = quota_body["GeneralResourceQuotaSet"][0]
                        if item["ResourceQuotaTotal"] != expected:
                            self.result.violation(f"quota total {item} != {expected}")
                        if item["ResourceQuotaAvailable"] < 0:
                            self.result.violation(f"quota exceeded: {item} ({account}, {region})")
                        self.result.quota_samples += 1
                    list_body = listed.json()["Response"]
                    if "Error" not in list_body and list_body["TotalCount"] > expected:
                        self.result.violation(
                            f"{list_body['TotalCount']} snapshots in ({account}, {region}) > "
                            f"quota {expected}"
                        )
                self.observe()
                time.sleep(0.1)

    def observe(self, every: float = 0.2) -> None:
        """A finished job never changes (seen from the job table, every ``every`` s)."""
        with self.observe_lock:
            if time.monotonic() - self.observed_at < every:
                return
            self.observed_at = read = time.monotonic()
            try:
                rows = job_rows(self.world.store())
            except DBAPIError:
                if not self.in_restart(read):
                    raise
                self.result.restart_failed_reads += 1
                return
            for problem in self.finished.observe(rows):
                self.result.violation(problem)
            self.result.finished_jobs_watched = len(self.finished)

    def staller(self) -> None:
        """The stalled-owner fault, ``stalls`` times (at most 8 tries each; one that stalled
        counts 4): at a random moment the owner of a random RUNNING job is stopped past the
        job's lease while the clients of the other server go on, then resumed
        (testkit/stall.py)."""
        rng = random.Random(self.seed * 100_003 - 1)
        store = self.world.store()
        pids = [s.process.pid for s in self.world.servers() if s.process is not None]
        tries = 0
        wait = (0.5, 2.0)  # both servers serve between stalls
        # A freeze that catches the owner inside a write transaction is resumed at once (it
        # holds the write lock every server needs; group commit holds it for a whole batch),
        # so such a try is retried soon and counts for less.
        while len(self.result.stalls) < self.stalls and tries < 8 * self.stalls:
            if self.stop.wait(rng.uniform(*wait)):
                return
            running = running_jobs(store, pids)
            if not running:
                continue
            tries += 1
            job = rng.choice(running)
            pid = owner_pid(job["owner"])
            assert pid is not None
            port = next(s.port for s in self.world.servers() if s.process and s.process.pid == pid)
            resumed: list[float] = []
            self.pauses.append((port, time.monotonic(), resumed))
            self.result.paused[port] += 1
            stall = stall_owner(store, job, pid, extra_seconds(rng), self.observe)
            resumed.append(time.monotonic())
            if stall.outcome.startswith("resumed at once"):
                wait = (0.05, 0.3)
                continue
            wait = (0.5, 2.0)
            tries += 3
            self.result.stalls.append(stall)

    def paused(self, server: Server, sent: float) -> bool:
        """Whether a server of the data dir was stopped while a request sent at ``sent`` (to
        ``server``, or to another) was in flight.

        Such a request's InternalError is counted, not a violation: a lock wait in flight
        (database.write: 5 s, measured on the monotonic clock) runs out during the pause, and
        the request fails once the server resumes; and a server stopped inside a write
        transaction holds the database's one write lock, which every server of the data dir
        then waits for in vain (seen under CPU load: 21 such answers from the other server).
        That is a limit of timed waits, not of the fencing this fault checks
        (docs/reliability.md)."""
        del server  # any server's pause counts: they share one write lock
        answered = time.monotonic()
        return any(
            stopped <= answered and (not end or end[0] >= sent) for _, stopped, end in self.pauses
        )

    def restarter(self) -> None:
        """``restart_database`` (pg_ctl restart), ``restarts`` times, evenly spread over the
        storm (never at its start or end), each a window in which requests may fail."""
        assert self.restart_database is not None
        started = time.monotonic()
        for n in range(1, self.restarts + 1):
            due = started + self.seconds * n / (self.restarts + 1)
            if self.stop.wait(max(due - time.monotonic(), 0.0)):
                return
            ended: list[float] = []
            began = time.monotonic()
            self.restarting.append((began, ended))
            self.restart_database()
            ended.append(time.monotonic())
            self.result.restarts.append((began - started, ended[0] - began))

    def in_restart(self, sent: float) -> bool:
        """Whether a database restart began before now and had not ended when a request
        (or a read) sent at ``sent`` began: it was in flight when the connections were cut."""
        answered = time.monotonic()
        return any(
            began <= answered and (not end or end[0] >= sent) for began, end in self.restarting
        )

    def after_restarts(self, sent: float) -> bool:
        """Whether every restart is over and ``sent`` is later than the end of the last."""
        windows = self.restarting
        return (
            bool(self.restarts)
            and len(windows) == self.restarts
            and bool(windows[-1][1])
            and (sent > windows[-1][1][0])
        )

    def excuse(self, server: Server, action: str, sent: float, problem: str | None) -> str | None:
        """``problem``, unless it is an InternalError of a request in flight while a server of
        the data dir was stopped (Storm.paused) or while the database restarted: counted, and
        then not a violation."""
        if problem is None or not problem.startswith("InternalError"):
            return problem
        if self.paused(server, sent):
            with self.result.lock:
                self.result.paused_internal_errors[server.port] += 1
            return None
        if self.in_restart(sent):
            with self.result.lock:
                self.result.restart_internal_errors[(server.port, action)] += 1
            return None
        return problem

    def uncovered(self) -> list[str]:
        return [a for a in ACTIONS if a not in self.succeeded]

    def run(self) -> Result:
        threads = [
            threading.Thread(target=self.client, args=(n,), daemon=True)
            for n in range(self.clients)
        ]
        helpers = [threading.Thread(target=self.sampler, daemon=True)]
        if self.stalls:
            helpers.append(threading.Thread(target=self.staller, name="staller", daemon=True))
        if self.bursts:
            helpers.append(threading.Thread(target=self.burster, name="burster", daemon=True))
        if self.restarts:
            helpers.append(threading.Thread(target=self.restarter, name="restarter", daemon=True))
        started = time.monotonic()
        for thread in [*threads, *helpers]:
            thread.start()
        self.stop.wait(self.seconds)
        while self.cover and not self.stop.is_set() and self.uncovered():
            if time.monotonic() - started > COVER_FACTOR * self.seconds:
                break  # the test's own assertion names what is missing
            time.sleep(0.2)
        self.stop.set()
        for thread in [*threads, *helpers]:
            thread.join(timeout=120)
            if thread.is_alive():
                self.result.violation(f"{thread.name} did not stop within 120 s")
        self.result.seconds = time.monotonic() - started
        return self.result


# -- invariants after the storm -----------------------------------------------------------------


def _time(value: str | dt.datetime | None) -> dt.datetime | None:
    """A job's timestamp: text from SQLite, a datetime from PostgreSQL."""
    if isinstance(value, dt.datetime) or value is None:
        return value
    return dt.datetime.fromisoformat(value) if value else None


def wait_settled(world: World, timeout: float = 120.0) -> float:
    """Seconds until no job is PENDING or RUNNING; raises AssertionError on timeout."""
    started = time.monotonic()
    while True:
        busy = [j for j in job_rows(world.store()) if j["state"] in ("PENDING", "RUNNING")]
        if not busy:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{len(busy)} jobs still unfinished after {timeout} s")
        time.sleep(0.2)


def check_jobs(world: World, result: Result) -> None:
    """Per instance, the jobs that hold it never overlap.

    Every job kind takes a lock in the transaction that creates it (``created_at``) and
    releases it in the one that finishes it (``finished_at``): create_snapshot the disk,
    power jobs the instance, apply_snapshot both. The rules (docs/behaviour.md's lock table;
    ``rules.check_*``) refuse every pair: a create while the instance or disk is held, a power
    op or an apply while either is held. So on one instance *all* jobs are pairwise disjoint,
    which is what is asserted, on [created_at, finished_at] (hence also on [started_at, ...])."""
    rows = job_rows(world.store())
    by_instance: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        result.jobs[f"{row['kind']}:{row['state']}"] += 1
        if row["state"] not in ("SUCCESS", "FAILED") or row["finished_at"] is None:
            result.violation(f"job {row['id']} ({row['kind']}) not finished: {row['state']}")
            continue
        cut_by_pause = result.paused and "database is locked" in str(row.get("message"))
        if row["state"] == "FAILED" and not cut_by_pause:  # (a lock wait: see Storm.paused)
            result.violation(f"job {row['id']} ({row['kind']}) FAILED: {row.get('message')}")
        for held in _holds(row):
            by_instance.setdefault(held, []).append(row)
    for instance_id, jobs in by_instance.items():
        jobs.sort(key=lambda j: (_time(j["created_at"]), j["id"]))
        for before, after in zip(jobs, jobs[1:], strict=False):
            held_until = _time(before["finished_at"])
            assert held_until is not None
            for column in ("created_at", "started_at"):
                begins = _time(after[column])
                if begins is not None and begins < held_until:
                    result.violation(
                        f"{instance_id}: job {after['id']} ({after['kind']}) {column} {begins} "
                        f"before job {before['id']} ({before['kind']}) finished {held_until}"
                    )


def _holds(row: dict[str, Any]) -> list[str]:
    """What a job holds from its accepting transaction to its last: an instance's job, the
    instance (a snapshot job its system disk with it); a data disk's job, the disk (and, for
    ApplyDiskBackup of an attached disk, the instance: its machine is stopped)."""
    if row["kind"] not in DISK_JOBS:
        return [str(row["instance_id"])]
    held = [str(row["disk_id"])]
    if row["kind"] == "ApplyDiskBackup" and row["instance_id"]:
        held.append(str(row["instance_id"]))
    return held


def check_settled(world: World, result: Result) -> None:
    """Every snapshot NORMAL and within quota, every instance idle, no lock left held."""
    server = world.server
    with read_only(world.store()) as db:
        held = db.tuples(
            "SELECT instance_id, 'op_job', op_job FROM instances WHERE op_job IS NOT NULL"
            " UNION ALL SELECT disk_id, 'op_job', op_job FROM disks WHERE op_job IS NOT NULL"
        )
        counts = db.tuples(
            "SELECT account_id, region, COUNT(*) FROM snapshots GROUP BY account_id, region"
        )
        account_ids = dict(db.tuples("SELECT name, id FROM accounts"))
    for row in held:
        result.violation(f"{row[0]} still holds {row[1]}={row[2]}")
    by_id = {account_ids[a.name]: n for n, a in enumerate(world.accounts)}
    for account_id, region, count in counts:
        quota = world.quota(by_id[account_id], region)
        if count > quota:
            result.violation(f"account {account_id} {region}: {count} snapshots > quota {quota}")
    with httpx.Client(base_url=server.url, timeout=60) as http:
        for account, region in world.scopes():
            key = world.accounts[account]
            listed = signed_request(
                http, key, server.endpoint, "DescribeSnapshots", {"Limit": 100}, region
            )
            for item in listed.json()["Response"]["SnapshotSet"]:
                if item["SnapshotState"] != "NORMAL" or item["LatestOperationState"] == "OPERATING":
                    result.violation(f"snapshot not settled: {item}")
            if region == DISK_REGION:
                check_disk_settled(http, world, account, result)
            described = signed_request(http, key, server.endpoint, "DescribeInstances", {}, region)
            for item in described.json()["Response"]["InstanceSet"]:
                if item["InstanceState"] not in ("RUNNING", "STOPPED"):
                    result.violation(f"instance {item['InstanceId']} is {item['InstanceState']}")
                if item["LatestOperationState"] == "OPERATING":
                    result.violation(f"instance {item['InstanceId']} still OPERATING")
    for each in world.servers():
        restarted = sum(
            n for (port, _), n in result.restart_internal_errors.items() if port == each.port
        )
        excused = result.paused_internal_errors[each.port] + restarted
        counted = internal_errors(httpx.get(f"{each.url}/metrics", timeout=60).text)
        if counted > excused:
            result.violation(
                f"/metrics of the server on port {each.port} counts {counted:g} InternalError "
                f"({excused} of requests in flight while it was stopped or the database "
                "restarted)"
            )
        for traceback in tracebacks(each.log()):
            if result.restarts and lost_connection(traceback):
                result.restart_tracebacks += 1
                continue
            # a lock timeout while any server of the data dir was stopped (Storm.paused)
            if not (sum(result.paused.values()) and "database is locked" in traceback):
                last = traceback.strip().splitlines()[-1:] or [""]
                result.violation(
                    f"the log of the server on port {each.port} has a traceback: {last[0][:300]}"
                )
                break


def check_disk_settled(http: httpx.Client, world: World, account: int, result: Result) -> None:
    """The account's data disk idle, counting the backups that exist (within its quota),
    and every backup NORMAL."""
    key, endpoint = world.accounts[account], world.server.endpoint
    listed = signed_request(http, key, endpoint, "DescribeDiskBackups", {"Limit": 100}, DISK_REGION)
    backups = listed.json()["Response"]["DiskBackupSet"]
    for item in backups:
        if item["DiskBackupState"] != "NORMAL" or item["LatestOperationState"] == "OPERATING":
            result.violation(f"disk backup not settled: {item}")
    (disk,) = [d for d in world.disks if d.account == account]
    described = signed_request(
        http, key, endpoint, "DescribeDisks", {"DiskIds": [disk.disk_id]}, DISK_REGION
    )
    (item,) = described.json()["Response"]["DiskSet"]
    held = sum(b["DiskId"] == disk.disk_id for b in backups)
    if item["LatestOperationState"] == "OPERATING" or item["DiskState"] not in (
        "ATTACHED",
        "UNATTACHED",
    ):
        result.violation(f"data disk not settled: {item}")
    if item["DiskBackupCount"] != held or held > BACKUP_QUOTA:
        result.violation(f"{disk.disk_id} counts {item['DiskBackupCount']} backups, {held} exist")


LOST_CONNECTION = (
    "terminating connection due to administrator command",
    "server closed the connection unexpectedly",
    "the connection is closed",
    "the database system is shutting down",
    "the database system is starting up",
    "consuming input failed",
    "the connection is lost",
    "Connection refused",
    "No such file or directory",  # the unix socket, while the server is down
)
"""What psycopg says when PostgreSQL goes away under a connection (pg_ctl restart)."""


def lost_connection(traceback: str) -> bool:
    """A traceback whose exception is a lost database connection."""
    last = traceback.strip().splitlines()[-1] if traceback.strip() else ""
    if last.startswith("sqlalchemy.exc.InvalidatePoolError"):  # the pool, after a lost one
        return True
    return "psycopg" in last and any(marker in last for marker in LOST_CONNECTION)


def check_recovered(world: World, result: Result) -> None:
    """After database restarts, every node answers again without being restarted: each
    answered successes to requests sent after the last restart, and is healthy now."""
    if not result.restarts:
        return
    for each in world.servers():
        if result.answered_after_restart[each.port] == 0:
            result.violation(f"the server on port {each.port} answered nothing after the restart")
        health = httpx.get(f"{each.url}/healthz", timeout=60)
        if health.status_code != 200:
            result.violation(f"/healthz of the server on port {each.port}: {health.text}")


def internal_errors(metrics: str) -> float:
    """The InternalError answers counted in a /metrics text."""
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("lightkeeper_requests_total{") and 'code="InternalError"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


CHAINED = ("During handling of the above exception", "The above exception was the direct cause")


def tracebacks(log: str) -> list[str]:
    """Each traceback of a server log, up to its exception line; a chain of exceptions
    (``During handling of the above exception ...``) is one, ending with the last of them."""
    found: list[str] = []
    chained = False
    for block in log.split("Traceback (most recent call last):")[1:]:
        lines = block.splitlines()[1:]
        end = next((n for n, line in enumerate(lines) if not line.startswith(" ")), len(lines))
        text = "\n".join(lines[: end + 1])
        if chained and found:
            found[-1] += "\n" + text
        else:
            found.append(text)
        chained = any(marker in block for marker in CHAINED)
    return found


def check_stored(world: World, storage: str, result: Result) -> None:
    """Once the servers stopped: every snapshot record has its data, and no data is left
    without a record, except what a server logged it kept (a DeleteSnapshots that could not
    remove the data at once, by design; the next start removes it)."""
    data_dir = world.server.data_dir
    stored, records = stored_snapshots(data_dir, storage), snapshot_records(world.store())
    logs = "".join(s.log() for s in world.servers())
    for snapshot_id in sorted(records - stored):
        result.violation(f"snapshot {snapshot_id} has a record but no data")
    for snapshot_id in sorted(stored - records):
        if f"snapshot {snapshot_id} data kept for now" not in logs:
            result.violation(f"snapshot data {snapshot_id} without a record")


def run_storm(
    data_dir: Path,
    clients: int,
    seconds: float,
    *,
    rate_limit: bool = False,
    seed: int = 0,
    storage: str = "raw",
    stalls: int = 0,
    job_lease: float | None = None,
    database: str | None = None,
    nodes: int = 1,
    restarts: int = 0,
    restart_database: Callable[[], None] | None = None,
    cover: bool = False,
) -> Result:
    """``stalls``: with a second server on the data dir, that many stalled owners.
    ``database``: a PostgreSQL URL for the records (None: SQLite in the data dir); ``nodes``:
    servers on the one database and data dir; ``restarts``: calls of ``restart_database``
    (e.g. testkit's Postgres.restart) in the middle of the storm; ``cover``: see ``Storm``."""
    servers = [
        storm_server(
            data_dir, rate_limit=rate_limit, storage=storage, job_lease=job_lease, database=database
        )
        for _ in range(max(nodes, 2 if stalls else 1))
    ]
    try:
        for server in servers:
            server.start()
        world = build_world(servers[0])
        world.peers = servers[1:]
        storm = Storm(
            world, clients, seconds, seed, stalls, rate_limit, restarts, restart_database, cover
        )
        result = storm.run()
        result.storage = storage
        result.database = "sqlite" if database is None else "postgresql"
        result.nodes = len(servers)
        result.settle_seconds = wait_settled(world)
        check_jobs(world, result)
        check_settled(world, result)
        check_recovered(world, result)
    finally:
        for server in servers:
            server.stop()  # SIGTERM: running jobs (a resumed owner's late work) finish first
    storm.observe(every=0.0)
    check_stored(world, storage, result)
    return result


@contextlib.contextmanager
def database_for(engine: str) -> Iterator[postgres.Postgres | None]:
    """``postgresql``: a private PostgreSQL server for the storm; ``sqlite``: None."""
    if engine == "sqlite":
        yield None
        return
    with postgres.running() as server:
        yield server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate-limit", action="store_true", help="keep the rate limits on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--storage", choices=["raw", "qcow2"], default="raw")
    parser.add_argument(
        "--stalls", type=int, default=0, help="stalled-owner faults (runs a second server)"
    )
    parser.add_argument(
        "--job-lease-seconds", type=float, help=f"passed to the servers as {LEASE_ENV}"
    )
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--nodes", type=int, default=1, help="servers on one database")
    parser.add_argument(
        "--database-restarts", type=int, default=0, help="pg_ctl restarts during the storm"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON only")
    args = parser.parse_args(argv)
    if args.database_restarts and args.database != "postgresql":
        parser.error("--database-restarts needs --database postgresql")
    with (
        tempfile.TemporaryDirectory(prefix="lk-storm-") as tmp,
        database_for(args.database) as pg,
    ):
        result = run_storm(
            Path(tmp) / "data",
            args.clients,
            args.seconds,
            rate_limit=args.rate_limit,
            seed=args.seed,
            storage=args.storage,
            stalls=args.stalls,
            job_lease=args.job_lease_seconds,
            database=pg.create_database("storm") if pg is not None else None,
            nodes=args.nodes,
            restarts=args.database_restarts,
            restart_database=pg.restart if pg is not None else None,
        )
    summary = result.summary()
    print(json.dumps(summary, indent=None if args.json else 2))
    return 1 if result.violations else 0
