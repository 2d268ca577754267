"""``serve --demo``: three instances whose disks hold some data, in the first account.

They go to the account whose keys the start banner printed (the first one, ``default``), so
that the README's first snippet, run with the first keys on the screen, lists them: a
separate ``demo`` account made the first DescribeInstances a newcomer ran answer nothing.
"""

from __future__ import annotations

import click
from sqlalchemy import func, select

from lightkeeper.lighthouse.admin import AdminService, demo_pattern
from lightkeeper.server import Services
from lightkeeper.store.accounts import Account
from lightkeeper.store.tables import instances

DEMO_INSTANCES = (
    ("web-1", "ap-guangzhou", "RUNNING", "GENERAL_BUNDLE"),
    ("db-1", "ap-guangzhou", "STOPPED", "GENERAL_BUNDLE"),
    ("archive-1", "ap-shanghai", "RUNNING", "STORAGE_BUNDLE"),
)


def seed_demo(services: Services, endpoint: str) -> None:
    """Idempotent: an account that already owns instances is left as it is (a restart with
    ``--demo`` seeds nothing twice, and never adds to instances of someone's own)."""
    first = services.accounts.all()[0]  # ``serve`` made one if there was none
    if _owns_instances(services, first):
        click.echo(f"demo: account {first.name!r} already has instances; not seeding it again")
        return
    admin = AdminService(services.world, services.accounts, services.settings.regions)
    lines = []
    for name, region, state, bundle in DEMO_INSTANCES:
        created = admin.create_instance(
            first.name,
            region,
            name=name,
            disk_size_gb=10,
            state=state,
            bundle_type=bundle,
            blueprint_id="lhbp-ubnt2204",
        )
        for n in range(4):
            admin.write_disk(
                created["InstanceId"], n * 256 * 1024 * 1024, demo_pattern(name, 1 << 20)
            )
        lines.append(f"  {created['InstanceId']}  {name:10} {region:13} {state:8} {bundle}")
    click.echo(
        f"Demo instances seeded in account {first.name!r} (the keys above):\n"
        + "\n".join(lines)
        + f"\nTry: tccli lighthouse DescribeInstances --region ap-guangzhou "
        f"--endpoint http://{endpoint} --secretId ... --secretKey ..."
    )


def _owns_instances(services: Services, account: Account) -> bool:
    with services.engine.connect() as conn:
        query = select(func.count()).select_from(instances)
        return bool(conn.scalar(query.where(instances.c.account_id == account.id)))
