"""``serve --demo``: a ``demo`` account with three instances whose disks hold some data."""

from __future__ import annotations

import click

from lightkeeper.lighthouse.admin import AdminService, demo_pattern
from lightkeeper.server import Services
from lightkeeper.store.accounts import AccountError

DEMO_INSTANCES = (
    ("web-1", "ap-guangzhou", "RUNNING", "GENERAL_BUNDLE"),
    ("db-1", "ap-guangzhou", "STOPPED", "GENERAL_BUNDLE"),
    ("archive-1", "ap-shanghai", "RUNNING", "STORAGE_BUNDLE"),
)


def seed_demo(services: Services, endpoint: str) -> None:
    """Idempotent: an existing ``demo`` account is left as it is."""
    try:
        account, key = services.accounts.create("demo")
    except AccountError:
        click.echo("demo account already exists; not seeding it again")
        return
    admin = AdminService(services.world, services.accounts, services.settings.regions)
    lines = []
    for name, region, state, bundle in DEMO_INSTANCES:
        created = admin.create_instance(
            "demo",
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
        "Demo account 'demo' seeded:\n"
        f"  SecretId  {key.secret_id}\n  SecretKey {key.secret_key}\n" + "\n".join(lines) + "\n"
        f"Try: tccli lighthouse DescribeInstances --region ap-guangzhou "
        f"--endpoint http://{endpoint} --secretId {key.secret_id} --secretKey {key.secret_key}"
    )
