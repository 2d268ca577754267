"""Composition root: turn ``Settings`` into a running application.

Everything is wired here and only here, so tests and the CLI build exactly the same server.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from lightkeeper.api.app import Frontend, build_app
from lightkeeper.api.ratelimit import RateLimiter
from lightkeeper.config import API_VERSION, SERVICE, Settings
from lightkeeper.lighthouse.actions import build_registry
from lightkeeper.lighthouse.regions import RegionService
from lightkeeper.store.accounts import Account, AccountStore, ApiKey
from lightkeeper.store.database import migrate, open_engine, secure_file, sqlite_url


@dataclass
class Services:
    engine: Engine
    accounts: AccountStore


def open_services(settings: Settings) -> Services:
    """Open (and migrate) the database; used by ``serve`` and every ``admin`` command."""
    url = settings.database_url or sqlite_url(settings.data_dir)
    engine = open_engine(url)
    migrate(engine)
    if url.startswith("sqlite"):
        secure_file(settings.data_dir / "lightkeeper.db")
    return Services(engine=engine, accounts=AccountStore(engine))


def ensure_first_account(services: Services) -> tuple[Account, ApiKey] | None:
    """On an empty database create the ``default`` account; return it only when created."""
    if services.accounts.count():
        return None
    return services.accounts.create("default")


def build_frontend(settings: Settings, services: Services) -> Frontend:
    registry = build_registry(RegionService(settings.regions))
    return Frontend(
        registry=registry,
        keys=services.accounts,
        version=API_VERSION,
        service=SERVICE,
        regions=settings.region_codes(),
        rate_limits=settings.rate_limits,
        limiter=RateLimiter(enabled=settings.rate_limit),
    )


def create_app(settings: Settings, services: Services):  # type: ignore[no-untyped-def]
    return build_app(build_frontend(settings, services))
