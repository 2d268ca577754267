"""Composition root: turn ``Settings`` into a running application.

Everything is wired here and only here, so tests, the CLI and ``serve`` build the same objects.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine

from lightkeeper import compute, storage
from lightkeeper.api.registry import ASGIApp
from lightkeeper.config import API_VERSION, SERVICE, Settings
from lightkeeper.lighthouse.world import Options, World
from lightkeeper.store import resources
from lightkeeper.store.accounts import Account, AccountStore, ApiKey
from lightkeeper.store.database import migrate, open_engine, secure_file, sqlite_url, write

logger = logging.getLogger("lightkeeper.server")

PUBLIC_BLUEPRINTS = (
    ("lhbp-ubnt2204", "Ubuntu", "Ubuntu Server 22.04 LTS 64bit", "UBUNTU", "LINUX_UNIX"),
    ("lhbp-dbn12x64", "Debian", "Debian 12 64bit", "DEBIAN", "LINUX_UNIX"),
    ("lhbp-cnts0706", "CentOS", "CentOS 7.6 64bit", "CENTOS", "LINUX_UNIX"),
    ("lhbp-wins2022", "Windows", "Windows Server 2022 DataCenter 64bit", "WINDOWS", "WINDOWS"),
)
DEFAULT_BLUEPRINT = PUBLIC_BLUEPRINTS[0][0]
SUPERVISE_SECONDS = 2.0


@dataclass
class Services:
    settings: Settings
    engine: Engine
    accounts: AccountStore
    world: World


def open_services(settings: Settings) -> Services:
    """Open (and migrate) the database and the drivers; used by ``serve`` and ``admin``."""
    url = settings.database_url or sqlite_url(settings.data_dir)
    engine = open_engine(url)
    migrate(engine)
    if url.startswith("sqlite"):
        secure_file(settings.data_dir / "lightkeeper.db")
    seed_blueprints(engine)
    world = World(
        engine=engine,
        storage=storage.make_driver(settings.storage, settings.data_dir),
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
        ),
    )
    return Services(settings=settings, engine=engine, accounts=AccountStore(engine), world=world)


def seed_blueprints(engine: Engine) -> None:
    """The public images every region offers; re-created at start if missing."""
    with write(engine) as conn:
        for blueprint_id, name, os_name, platform, platform_type in PUBLIC_BLUEPRINTS:
            if resources.get_blueprint(conn, blueprint_id) is None:
                resources.insert_blueprint(
                    conn, blueprint_id, name, os_name, platform, platform_type
                )


def remove_orphan_snapshots(world: World) -> list[str]:
    """Data whose record is gone (a crash between DeleteSnapshots' commit and its file
    deletion) is removed; data of snapshots being created is kept."""
    stored = world.storage.snapshot_ids()
    with world.read() as conn:
        known = resources.existing_snapshot_ids(conn, stored)
    orphans = [s for s in stored if s not in known]
    for snapshot_id in orphans:
        world.discard_snapshot_data(snapshot_id)
    return orphans


def ensure_first_account(services: Services) -> tuple[Account, ApiKey] | None:
    """On an empty database create the ``default`` account; return it only when created."""
    if services.accounts.count():
        return None
    return services.accounts.create("default")


def create_app(services: Services) -> ASGIApp:
    # Imported here: admin commands open Services too and should not pay for the API stack.
    from lightkeeper.api.app import Frontend, build_app
    from lightkeeper.api.auth import CachedKeyStore, KeyStore
    from lightkeeper.api.ratelimit import RateLimiter
    from lightkeeper.lighthouse.actions import build_registry
    from lightkeeper.lighthouse.authorization import CamAuthorizer
    from lightkeeper.lighthouse.operations import Operations
    from lightkeeper.lighthouse.regions import RegionService
    from lightkeeper.worker import Worker

    settings, world = services.settings, services.world
    operations = Operations(world)
    worker = Worker(
        services.engine, operations.executors(), operations.give_up, threads=settings.workers
    )
    world.notify = worker.notify

    def recover() -> None:
        removed = world.storage.cleanup_temporary()
        if removed:
            logger.info("removed %d temporary file(s) left by an interrupted copy", removed)
        orphans = remove_orphan_snapshots(world)
        if orphans:
            logger.info("removed data of %d deleted snapshot(s): %s", len(orphans), orphans)
        if world.compute.supervised:  # re-attach to machines that outlived the last server
            worker.every(SUPERVISE_SECONDS, operations.reconcile, "supervisor")
        worker.start()

    keys: KeyStore = services.accounts
    reader = resources.auth_version_reader(services.engine)
    if reader is not None:  # SQLite: cache keys, checked against a version bumped on changes
        keys = CachedKeyStore(services.accounts, reader)
    frontend = Frontend(
        registry=build_registry(RegionService(settings.regions), world),
        keys=keys,
        version=API_VERSION,
        service=SERVICE,
        regions=settings.region_codes(),
        rate_limits=settings.rate_limits,
        limiter=RateLimiter(enabled=settings.rate_limit),
        authorizer=CamAuthorizer(world),
        inline_reads=services.engine.dialect.name == "sqlite",
    )
    return build_app(frontend, on_startup=[recover], on_shutdown=[worker.stop])
