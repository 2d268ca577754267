"""``lightkeeper admin`` world commands and ``serve --demo``, through the real CLI."""

from __future__ import annotations

from collections.abc import Callable

from tencentcloud.lighthouse.v20200324 import models
from testkit import world
from testkit.server import Account, Server, run_cli


def test_disk_write_read_and_sha256_round_trip(server: Server) -> None:
    account = world.new_account(server)
    instance_id = world.create_instance(server, account)["InstanceId"]
    world.disk_write(server, instance_id, 4096, b"hello lighthouse")
    result = run_cli(
        "admin",
        "disk",
        "read",
        instance_id,
        "--offset",
        "4096",
        "--length",
        "16",
        data_dir=server.data_dir,
    )
    assert result.stdout == "hello lighthouse"
    assert len(world.disk_sha256(server, instance_id)) == 64
    outside = run_cli(
        "admin",
        "disk",
        "write",
        instance_id,
        "--offset",
        str(2 * 1024**3),
        data_dir=server.data_dir,
        check=False,
        input_bytes=b"x",
    )
    assert outside.returncode == 1
    assert outside.stderr.startswith("lightkeeper: error:")


def test_instance_create_prints_the_instance_and_validates_input(server: Server) -> None:
    account = world.new_account(server)
    created = world.create_instance(
        server,
        account,
        "ap-beijing",
        "--zone",
        "ap-beijing-5",
        "--name",
        "web",
        "--state",
        "STOPPED",
        "--tag",
        "env=prod",
    )
    assert created["InstanceId"].startswith("lhins-") and len(created["InstanceId"]) == 14
    assert created["SystemDisk"]["DiskId"].startswith("lhdisk-")
    assert (created["Zone"], created["InstanceName"], created["InstanceState"]) == (
        "ap-beijing-5",
        "web",
        "STOPPED",
    )
    assert created["Tags"] == [{"Key": "env", "Value": "prod"}]
    bad = server.admin(
        "instance",
        "create",
        "--account",
        account.name,
        "--region",
        "ap-beijing",
        "--zone",
        "ap-guangzhou-3",
        "--json",
        check=False,
    )
    assert bad.returncode == 1 and "zone" in bad.stderr
    unknown = server.admin(
        "instance", "create", "--account", "nobody", "--region", "ap-beijing", "--json", check=False
    )
    assert unknown.returncode == 1 and "nobody" in unknown.stderr


def test_resize_only_grows_and_blueprints_are_listed(server: Server) -> None:
    account = world.new_account(server)
    instance_id = world.create_instance(server, account)["InstanceId"]
    grown = server.admin("instance", "resize-disk", instance_id, "--size", "3", "--json")
    assert grown["SystemDisk"]["DiskSize"] == 3
    shrink = server.admin("instance", "resize-disk", instance_id, "--size", "2", check=False)
    assert shrink.returncode == 1
    blueprints = {b["BlueprintId"] for b in server.admin("blueprint", "list", "--json")}
    assert {"lhbp-ubnt2204", "lhbp-dbn12x64", "lhbp-cnts0706"} <= blueprints


def test_job_list_records_each_operation(server: Server) -> None:
    account = world.new_account(server)
    instance_id = world.create_instance(server, account)["InstanceId"]
    c = world.client(server, account)
    world.wait_normal(c, world.create_snapshot(c, instance_id))
    history = server.admin("job", "list", "--json")
    mine = [j for j in history if j["instance_id"] == instance_id]
    assert [(j["kind"], j["state"]) for j in mine] == [("create_snapshot", "SUCCESS")]


def test_serve_demo_seeds_three_instances_once(make_server: Callable[..., Server]) -> None:
    server = make_server("--demo", "--transition-seconds", "0")
    log = server.log()
    assert "Demo instances seeded in account 'default'" in log  # the banner's account
    secret_id = log.split("SecretId")[1].split()[0]
    secret_key = log.split("SecretKey")[1].split()[0]
    demo = Account("default", "", 0, secret_id, secret_key)
    guangzhou = world.client(server, demo).DescribeInstances(models.DescribeInstancesRequest())
    assert guangzhou.TotalCount == 2
    shanghai = world.client(server, demo, "ap-shanghai")
    assert shanghai.DescribeInstances(models.DescribeInstancesRequest()).TotalCount == 1
    heads = [
        run_cli(
            "admin", "disk", "read", i.InstanceId, "--length", "64", data_dir=server.data_dir
        ).stdout
        for i in guangzhou.InstanceSet
    ]
    assert heads[0] != heads[1] and all(h.strip("\x00") for h in heads)  # seeded with data
    server.stop()
    server.start()
    assert server.log().count("Demo instances seeded") == 1
    assert "already has instances; not seeding it again" in server.log()
