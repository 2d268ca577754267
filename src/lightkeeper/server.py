"""Composition root: turn ``Settings`` into a running application.

Everything is wired here and only here, so tests, the CLI and ``serve`` build the same objects.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy import Engine, inspect
from sqlalchemy.exc import SQLAlchemyError

from lightkeeper import compute, storage
from lightkeeper.api.registry import ASGIApp
from lightkeeper.config import API_VERSION, SERVICE, ConfigError, Settings
from lightkeeper.heartbeat import Heartbeat
from lightkeeper.lighthouse.admin import abandon_unfinished_creations
from lightkeeper.lighthouse.world import Options, World
from lightkeeper.storage.files import QUARANTINE, fsync_dir
from lightkeeper.store import nodes, resources
from lightkeeper.store.accounts import Account, AccountStore, ApiKey
from lightkeeper.store.database import (
    StoreUnavailable,
    migrate,
    open_engine,
    reads_are_local,
    secure_file,
    sqlite_path,
    sqlite_url,
    write,
)
from lightkeeper.store.health import StoreHealth
from lightkeeper.store.principals import CredentialStore, UserStore, purge_expired_sessions
from lightkeeper.store.shared import shared_counters

logger = logging.getLogger("lightkeeper.server")

PUBLIC_BLUEPRINTS = (
    ("lhbp-ubnt2204", "Ubuntu", "Ubuntu Server 22.04 LTS 64bit", "UBUNTU", "LINUX_UNIX"),
    ("lhbp-dbn12x64", "Debian", "Debian 12 64bit", "DEBIAN", "LINUX_UNIX"),
    ("lhbp-cnts0706", "CentOS", "CentOS 7.6 64bit", "CENTOS", "LINUX_UNIX"),
    ("lhbp-wins2022", "Windows", "Windows Server 2022 DataCenter 64bit", "WINDOWS", "WINDOWS"),
)
DEFAULT_BLUEPRINT = PUBLIC_BLUEPRINTS[0][0]
SUPERVISE_SECONDS = 2.0
# What ``serve --existing-data`` may do with data found next to a database that is new.
ExistingData = Literal["refuse", "quarantine"]
EXISTING_DATA_CHOICES: tuple[ExistingData, ...] = ("refuse", "quarantine")
# The data dir's folders of disk, snapshot and machine data (``quarantine/`` is set aside).
DATA_DIRS = ("disks", "snapshots", "compute", "vms", "tmp")


API_THREADS = 40
"""The threads requests run in at most: anyio's default thread limiter, which Starlette's
``run_in_threadpool`` uses."""


@dataclass
class Services:
    settings: Settings
    engine: Engine
    accounts: AccountStore
    world: World
    jobs_ready: threading.Event
    """Set when a job is committed (``World.notify``); the worker waits on it between polls."""


def open_services(settings: Settings, existing_data: ExistingData = "refuse") -> Services:
    """Open (and migrate) the database and the drivers; used by ``serve`` and ``admin``.

    A database that does not exist yet is only created in a data dir without disk or
    snapshot data: see ``guard_existing_data``."""
    url = settings.database_url or sqlite_url(settings.data_dir)
    # Job workers, the lease and node heartbeats, the supervisor and the API's threads share
    # the pool: enough stays open for the workers and a few more, and every API thread may
    # add one under load (a 200-client storm on PostgreSQL ran out with fewer).
    engine = open_engine(url, pool_size=settings.workers + 8, max_overflow=API_THREADS)
    new = database_is_new(engine)
    if new:  # (before the storage driver makes its directories in the data dir)
        guard_existing_data(settings.data_dir, existing_data)
    disks = storage.make_driver(settings.storage, settings.data_dir, **settings.storage_options())
    if new:
        guard_shared_pool(disks)
    migrate(engine)
    database_file = sqlite_path(engine)
    if database_file is not None:
        secure_file(database_file)
    seed_blueprints(engine)
    jobs_ready = threading.Event()
    world = World(
        engine=engine,
        storage=disks,
        compute=compute.make_driver(
            settings.compute,
            settings.data_dir,
            settings.transition_seconds,
            kernel=settings.qemu_kernel,
            initrd=settings.qemu_initrd,
            append=settings.qemu_append,
            memory_mb=settings.qemu_memory_mb,
            soft_stop_timeout=settings.soft_stop_timeout,
            accel=settings.qemu_accel,
        ),
        options=Options(
            snapshot_quota_per_instance=settings.snapshot_quota_per_instance,
            snapshot_quota_max=settings.snapshot_quota_max,
            operation_seconds=settings.operation_seconds,
            quota_lock_timeout=settings.quota_lock_timeout,
            max_queued_jobs=settings.max_queued_jobs,
            restart_after_rollback=settings.restart_after_rollback,
            job_lease_seconds=settings.job_lease_seconds,
        ),
        notify=jobs_ready.set,
        node=settings.node,
    )
    return Services(
        settings=settings,
        engine=engine,
        accounts=AccountStore(engine),
        world=world,
        jobs_ready=jobs_ready,
    )


def seed_blueprints(engine: Engine) -> None:
    """The public images every region offers; re-created at start if missing."""
    with write(engine) as conn:
        for blueprint_id, name, os_name, platform, platform_type in PUBLIC_BLUEPRINTS:
            if resources.get_blueprint(conn, blueprint_id) is None:
                resources.insert_blueprint(
                    conn, blueprint_id, name, os_name, platform, platform_type
                )


def database_is_new(engine: Engine) -> bool:
    """No schema yet (for SQLite: no file, which is then not created by asking). A database
    that cannot be read (a full disk cannot create the -wal) raises: it is not "new"."""
    path = sqlite_path(engine)
    if path is not None and not path.exists():
        return True
    with engine.connect() as conn:
        return not inspect(conn).has_table("alembic_version")


def guard_shared_pool(disks: storage.StorageDriver) -> None:
    """``guard_existing_data`` for a pool outside the data dir (Ceph): a new database beside
    a pool that holds snapshots is another deployment's pool, or this one's without its
    database; starting would make all of it orphans to quarantine. Always refused: pool data
    cannot be moved into a data dir."""
    if disks.capabilities.shared_pool and disks.snapshots():
        raise ConfigError(
            f"storage pool {disks.pool} already holds snapshots, but the database is new: "
            "point --database at the database of the nodes that made them, or give this "
            "deployment a pool (or --rbd-namespace) of its own"
        )


def guard_existing_data(data_dir: Path, existing_data: ExistingData) -> None:
    """A new database next to disks or snapshots means the old database is lost (deleted,
    moved, a wrong ``--data-dir`` or ``database_url``): starting empty would orphan that data
    and the orphan cleanup would then see all of it as garbage. Refused, unless ``serve
    --existing-data quarantine`` says to move the data aside (nothing deleted) and start
    empty. There is no "adopt": the files do not say whose instances they were."""
    held = [name for name in DATA_DIRS if _holds_anything(data_dir / name)]
    if not held:
        return
    if existing_data == "refuse":
        raise ConfigError(
            f"data dir {data_dir} holds disk or snapshot data but has no database "
            f"({', '.join(f'{name}/' for name in held)} not empty): restore lightkeeper.db "
            "(and its -wal file), or serve once with --existing-data quarantine to move "
            "that data aside and start empty"
        )
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = data_dir / QUARANTINE / f"no-database-{stamp}"
    (data_dir / QUARANTINE).mkdir(mode=0o700, exist_ok=True)
    target.mkdir(mode=0o700)
    # A -wal left without its database would be replayed into the new one: it goes too.
    stale = [n for n in ("lightkeeper.db-wal", "lightkeeper.db-shm") if (data_dir / n).exists()]
    if (data_dir / "lightkeeper.db").exists():
        stale = []
    for name in (*held, *stale):
        os.rename(data_dir / name, target / name)
    fsync_dir(data_dir)
    logger.warning(
        "moved the data of a data dir without its database to %s (%s): nothing was deleted",
        target,
        ", ".join(held),
    )


def _holds_anything(directory: Path) -> bool:
    return directory.is_dir() and any(directory.iterdir())


def quarantine_orphan_snapshots(world: World) -> list[str]:
    """Snapshot data without a record. Where a tombstone proves the record was deleted (a
    crash between DeleteSnapshots' commit and its file deletion, a failed create whose data
    could not be removed) the data is deleted; any other is moved into the data dir's
    ``quarantine/``, never deleted: nothing proves its record was deleted rather than lost.
    Data of snapshots being created has a record and is kept. Records and tombstones are
    keyed by snapshot id alone, so the listing is matched by snapshot id. Returns the
    quarantined ids."""
    stored = world.storage.snapshots()
    stored_ids = {ref.snapshot_id for ref in stored}
    with world.read() as conn:
        known = resources.existing_snapshot_ids(conn, sorted(stored_ids))
        deleted = resources.deleted_snapshot_ids(conn)
    orphans = [ref for ref in stored if ref.snapshot_id not in known]
    world.discard_deleted_snapshots({ref: None for ref in orphans if ref.snapshot_id in deleted})
    with world.write() as conn:  # tombstones of data already gone prove nothing any more
        resources.forget_deleted_snapshots(conn, deleted - stored_ids)
    moved = []
    for ref in (ref for ref in orphans if ref.snapshot_id not in deleted):
        try:
            world.storage.quarantine_snapshot(ref.disk_id, ref.snapshot_id)
        except storage.StorageError as exc:
            logger.warning("snapshot %s data without a record left in place: %s", ref, exc)
            continue
        moved.append(ref.snapshot_id)
    return moved


def recover_store(world: World) -> None:
    """Start-up checks of the store, before any job runs (see ``create_app``)."""
    removed = world.storage.cleanup_temporary()
    if removed:
        logger.info("removed %d temporary file(s) left by an interrupted copy", removed)
    abandoned = abandon_unfinished_creations(world)
    if abandoned:
        logger.info("undid %d instance creation(s) left unfinished: %s", len(abandoned), abandoned)
    orphans = quarantine_orphan_snapshots(world)
    if orphans:
        logger.warning(
            "moved the data of %d snapshot(s) without a database record to %s: %s",
            len(orphans),
            QUARANTINE + "/snapshots/",
            orphans,
        )
    with world.write() as conn:
        purged = purge_expired_sessions(conn)
    if purged:
        logger.info("purged %d expired temporary credential(s)", purged)


def ensure_first_account(services: Services) -> tuple[Account, ApiKey] | None:
    """On an empty database create the ``default`` account; return it only when created
    (by this node: another starting at the same moment may have created it)."""
    if services.accounts.count():  # the common case, without the write lock
        return None
    return services.accounts.create_first("default")


def create_app(services: Services) -> ASGIApp:
    # Imported here: admin commands open Services too and should not pay for the API stack.
    from prometheus_client import Gauge

    from lightkeeper.api.app import Frontend, build_app, endpoint
    from lightkeeper.api.auth import CachedKeyStore, KeyStore, ReplayGuard
    from lightkeeper.api.ratelimit import RateLimiter
    from lightkeeper.console.app import PREFIX as CONSOLE
    from lightkeeper.console.app import console_app
    from lightkeeper.lighthouse import federation
    from lightkeeper.lighthouse.actions import build_registry
    from lightkeeper.lighthouse.authorization import CamAuthorizer
    from lightkeeper.lighthouse.federation import sts_registry
    from lightkeeper.lighthouse.jobs import JobKinds
    from lightkeeper.lighthouse.operations import Operations
    from lightkeeper.lighthouse.regions import RegionService
    from lightkeeper.lighthouse.scrub import Scrubber
    from lightkeeper.store.metrics import WriteMetrics
    from lightkeeper.worker import Worker

    settings, world = services.settings, services.world
    operations = Operations(world)
    kinds = JobKinds(world)
    worker = Worker(
        services.engine,
        kinds.executors(),
        kinds.give_up,
        threads=settings.workers,
        lease_seconds=settings.job_lease_seconds,
        wake=services.jobs_ready,
        node=settings.node,
        pool=world.storage.pool,
        host=world.host,
    )
    heartbeat = Heartbeat(services.engine, settings.node, heartbeat_interval(settings))

    def recover() -> None:
        register_node(services)  # again: an app built without ``serve`` (tests, bench)
        recover_store(world)
        worker.every(heartbeat.interval, heartbeat.beat, "node-heartbeat")
        if world.compute.supervised:  # re-attach to machines that outlived the last server
            worker.every(SUPERVISE_SECONDS, operations.reconcile, "supervisor")
        if settings.scrub_interval > 0:
            worker.every(scrub_poll_seconds(settings), scrubber.step, "scrubber")
        worker.start()

    def shut_down() -> None:
        worker.stop()
        try:
            nodes.stopped(services.engine, settings.node)
        except (SQLAlchemyError, StoreUnavailable) as exc:  # it shows DOWN instead
            logger.warning("node %s: could not record the stop: %s", settings.node, exc)

    credentials = CredentialStore(services.engine)
    keys: KeyStore = credentials
    reader = resources.auth_version_reader(services.engine)
    if reader is not None:  # SQLite: cache keys, checked against a version bumped on changes
        keys = CachedKeyStore(credentials, reader)
    health = StoreHealth(services.engine, settings.data_dir)
    shared = shared_counters(services.engine)  # counted with the other nodes, or here
    counts, nonces = shared if shared is not None else (None, None)
    frontend = Frontend(
        health=lambda: health.problem() or heartbeat.problem(),
        registry=build_registry(RegionService(settings.regions), world),
        keys=keys,
        version=API_VERSION,
        service=SERVICE,
        regions=settings.region_codes(),
        rate_limits=settings.rate_limits,
        limiter=RateLimiter(enabled=settings.rate_limit, counts=counts),
        replay=ReplayGuard(nonces=nonces),
        authorizer=CamAuthorizer(),
        inline_reads=reads_are_local(services.engine),
        trusted_proxies=settings.trusted_proxy,
        faults=world.faults,  # (armed only through the control API)
    )
    Gauge(
        "lightkeeper_store_writable",
        "1 if the database and data dir take writes (what /healthz checks), else 0.",
        registry=frontend.metrics.registry,
    ).set_function(health.writable)
    heartbeat.instrument(frontend.metrics.registry, lambda: worker.take_overs)
    scrubber = Scrubber(
        world, settings.scrub_interval, settings.scrub_bandwidth, frontend.metrics.registry
    )
    frontend.metrics.registry.register(WriteMetrics(services.engine))
    sts = Frontend(  # the console's sign-in: STS GetFederationToken, the same rules
        registry=sts_registry(UserStore(services.engine, services.accounts)),
        keys=keys,
        version=federation.VERSION,
        service=federation.SERVICE,
        regions=settings.region_codes(),
        limiter=frontend.limiter,
        replay=frontend.replay,
        trusted_proxies=settings.trusted_proxy,
    )
    mounts = {
        f"{CONSOLE}/sts": endpoint(sts),
        CONSOLE: console_app(),
        **control_mounts(services),
    }
    return build_app(
        frontend,
        on_startup=[recover],
        on_shutdown=[shut_down],
        mounts=mounts,
        browser_home=f"{CONSOLE}/",
    )


def control_mounts(services: Services) -> dict[str, ASGIApp]:
    """The control API, when ``--control-api`` asks for it (never by default)."""
    settings = services.settings
    if not settings.control_api:
        return {}
    if not settings.control_token:
        raise ConfigError("the control API needs a token (serve makes one)")
    from lightkeeper.lighthouse.admin import AdminService
    from lightkeeper.lighthouse.control import Control
    from lightkeeper.lighthouse.control_http import PREFIX, control_app

    admin = AdminService(services.world, services.accounts, settings.regions)
    control = Control(admin, services.accounts, DEFAULT_BLUEPRINT)
    return {PREFIX: control_app(control, settings.control_token)}


def scrub_poll_seconds(settings: Settings) -> float:
    """How often the scrubber looks for snapshots due: a tenth of the interval, within
    [0.5 s, 30 s] (each look is one indexed query)."""
    return min(30.0, max(0.5, settings.scrub_interval / 10))


def heartbeat_interval(settings: Settings) -> float:
    """As often as job leases are renewed: a node is down (3 missed beats) about when the
    leases of its jobs run out."""
    return settings.job_lease_seconds / 3


def register_node(services: Services) -> None:
    """Take this server's node name in the database before it serves (NodeTaken if a live
    server holds it)."""
    settings = services.settings
    nodes.register(
        services.engine,
        settings.node,
        f"{settings.host}:{settings.port}",
        settings.storage,
        settings.compute,
        heartbeat_interval(settings),
        pool=services.world.storage.pool,
    )
