"""The rbd driver's settings come from flags, LIGHTKEEPER_* variables or the TOML file, like
every other."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from testkit import world
from testkit.server import Server, run_cli


def test_rbd_settings_from_toml_and_environment_reach_the_driver(
    tmp_path: Path, make_server: Callable[..., Server], rbd_options: dict[str, Any]
) -> None:
    """Namespace from the TOML file, pool and client from LIGHTKEEPER_* variables: the disk of
    a new instance is an image in exactly that namespace."""
    import rados
    import rbd

    config = tmp_path / "lightkeeper.toml"
    config.write_text(f'storage = "rbd"\nrbd_namespace = "{rbd_options["namespace"]}"\n')
    srv = make_server("--config", str(config), start=False)
    srv.env = {"LIGHTKEEPER_RBD_POOL": "rbd", "LIGHTKEEPER_CEPH_CLIENT": "admin"}
    srv.start()
    created = world.create_instance(srv, world.new_account(srv))
    cluster = rados.Rados(conffile="")
    cluster.connect(timeout=10)
    try:
        ioctx = cluster.open_ioctx("rbd")
        ioctx.set_namespace(rbd_options["namespace"])
        assert rbd.RBD().list(ioctx) == [f"lk.{created['SystemDisk']['DiskId']}"]
        ioctx.close()
    finally:
        cluster.shutdown()


def test_a_new_database_beside_a_pool_that_holds_snapshots_is_refused(
    tmp_path: Path, make_server: Callable[..., Server], rbd_options: dict[str, Any]
) -> None:
    """The rbd counterpart of the data dir's guard: another deployment's pool (or this one's
    without its database) is never taken over, whose snapshots would all look orphaned."""
    args = ("--storage", "rbd", "--rbd-namespace", rbd_options["namespace"])
    first = make_server(*args)
    account = world.new_account(first)
    created = world.create_instance(first, account, "ap-guangzhou", "--state", "STOPPED")
    world.wait_normal(
        world.client(first, account),
        world.create_snapshot(world.client(first, account), created["InstanceId"]),
    )
    first.stop()
    result = run_cli("serve", *args, data_dir=tmp_path / "elsewhere", check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("lightkeeper: error: storage pool lhpool-")
    assert len(result.stderr.splitlines()) == 1
