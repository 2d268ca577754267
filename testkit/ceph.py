"""A private one-node Ceph cluster for tests, tools and benchmarks of the rbd storage driver:
one monitor on a free loopback port, one manager, one BlueStore OSD on a sparse file, an
``rbd`` pool; every daemon bound to 127.0.0.1, no authentication (loopback only), everything
in one directory, gone on stop.

    python -m testkit.ceph up DIR      # prints: export CEPH_CONF=DIR/ceph.conf
    python -m testkit.ceph down DIR

Ceph's own manual-deployment steps (monmaptool, ceph-mon --mkfs, ceph osd new, ceph-osd
--mkfs), as in its documentation; Debian's ``ceph`` package provides the daemons. About 15 s
to a clean pool and 0.7 GB of memory on these machines (docs/performance.md). Tests get
their own RADOS namespace each (``namespace``), so one cluster serves a whole test run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

POOL = "rbd"
START_TIMEOUT = 120.0


def installed() -> bool:
    return all(shutil.which(tool) for tool in ("ceph-mon", "ceph-osd", "ceph-mgr", "ceph"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Ceph:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.conf = self.root / "ceph.conf"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "CEPH_CONF": str(self.conf)}

    def _run(self, *args: str, timeout: float = 60.0) -> str:
        done = subprocess.run(
            args, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr}")
        return done.stdout

    def up(self) -> None:
        root = self.root
        if root.exists():
            shutil.rmtree(root)
        for sub in ("mon", "mgr/ceph-x", "osd/ceph-0", "run", "log"):
            (root / sub).mkdir(parents=True)
        fsid, port = str(uuid.uuid4()), _free_port()
        self.conf.write_text(_CONF.format(fsid=fsid, port=port, root=root))
        self._run("monmaptool", "--create", "--add", "a", f"127.0.0.1:{port}", "--fsid", fsid,
                  str(root / "monmap"))  # fmt: skip
        self._run("ceph-authtool", "--create-keyring", str(root / "keyring"), "--gen-key", "-n",
                  "mon.", "--cap", "mon", "allow *")  # fmt: skip
        self._run("ceph-mon", "--mkfs", "-i", "a", "--monmap", str(root / "monmap"), "--keyring",
                  str(root / "keyring"))  # fmt: skip
        self._run("ceph-mon", "-i", "a")
        self._run("ceph-mgr", "-i", "x")
        osd = str(uuid.uuid4())
        self._run("ceph", "osd", "new", osd)
        self._run("ceph-osd", "-i", "0", "--mkfs", "--osd-uuid", osd, timeout=120)
        self._run("ceph-osd", "-i", "0")
        self._wait(lambda: '"num_up_osds":1' in self._run("ceph", "osd", "stat", "-f", "json")
                   .replace(" ", ""))  # fmt: skip
        self._run("ceph", "osd", "pool", "create", POOL, "8", "8")
        self._run("rbd", "pool", "init", POOL)
        self._wait(self._clean)

    def _clean(self) -> bool:
        status = json.loads(self._run("ceph", "pg", "stat", "-f", "json"))
        by_state = status.get("pg_summary", status).get("num_pg_by_state", [])
        total = sum(int(s["num"]) for s in by_state)
        clean = sum(int(s["num"]) for s in by_state if s["name"] == "active+clean")
        return total > 0 and clean == total

    def _wait(self, ready: object) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if callable(ready) and ready():
                    return
            except (RuntimeError, ValueError, KeyError, subprocess.TimeoutExpired):
                pass
            time.sleep(0.3)
        raise RuntimeError(f"ceph did not become ready; logs in {self.root / 'log'}")

    def down(self) -> None:
        """Stop the daemons this cluster started (their pid files), then remove it all."""
        for pidfile in (self.root / "run").glob("*.pid"):
            try:
                os.kill(int(pidfile.read_text().split()[0]), signal.SIGTERM)
            except (ValueError, OSError):
                continue
        deadline = time.monotonic() + 15
        for pidfile in (self.root / "run").glob("*.pid"):
            try:
                pid = int(pidfile.read_text().split()[0])
            except (ValueError, OSError):
                continue
            while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
                time.sleep(0.1)
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


_CONF = """[global]
fsid = {fsid}
mon host = 127.0.0.1:{port}
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon warn on pool no redundancy = false
mon_warn_on_insecure_global_id_reclaim_allowed = false
mon data avail warn = 1
osd crush chooseleaf type = 0
run dir = {root}/run
admin socket = {root}/run/$name.asok
log file = {root}/log/$name.log
pid file = {root}/run/$name.pid
[mon]
mon data = {root}/mon/$cluster-$id
mon allow pool delete = true
[mgr]
mgr data = {root}/mgr/$cluster-$id
[osd]
osd data = {root}/osd/$cluster-$id
osd objectstore = bluestore
bluestore block path = {root}/osd/block.img
bluestore block create = true
bluestore block size = 42949672960
bluestore fsck on mkfs = false
bluestore cache size = 268435456
"""


@contextmanager
def running(root: Path) -> Iterator[Ceph]:
    cluster = Ceph(root)
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down()


def reachable(conf: Path) -> bool:
    """A cluster answers at ``conf`` (within a few seconds)."""
    done = subprocess.run(
        ["ceph", "--connect-timeout", "5", "-c", str(conf), "health"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return done.returncode == 0


@contextmanager
def namespace(conf: Path, name: str) -> Iterator[str]:
    """A fresh RADOS namespace in the ``rbd`` pool, emptied and removed after."""
    import rados
    import rbd

    cluster = rados.Rados(conffile=str(conf))
    cluster.connect(timeout=10)
    try:
        ioctx = cluster.open_ioctx(POOL)
        rbd.RBD().namespace_create(ioctx, name)
        try:
            yield name
        finally:
            ioctx.set_namespace(name)
            _empty(ioctx, rbd)
            ioctx.set_namespace("")
            rbd.RBD().namespace_remove(ioctx, name)
            ioctx.close()
    finally:
        cluster.shutdown()


def _empty(ioctx: object, rbd: object) -> None:
    """Every image (children before parents, snapshots unprotected) and object."""
    api = rbd.RBD()  # type: ignore[attr-defined]
    for _ in range(5):
        names = api.list(ioctx)
        if not names:
            break
        for name in names:
            try:
                with rbd.Image(ioctx, name) as image:  # type: ignore[attr-defined]
                    for snap in list(image.list_snaps()):
                        if image.is_protected_snap(snap["name"]):
                            image.unprotect_snap(snap["name"])
                        image.remove_snap(snap["name"])
                api.remove(ioctx, name)
            except Exception:  # (a parent with children: the next round)
                continue
    for obj in list(ioctx.list_objects()):  # type: ignore[attr-defined]
        try:
            ioctx.remove_object(obj.key)  # type: ignore[attr-defined]
        except Exception:
            continue


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] not in ("up", "down"):
        print("usage: python -m testkit.ceph up|down DIR", file=sys.stderr)
        return 2
    cluster = Ceph(Path(sys.argv[2]))
    if sys.argv[1] == "up":
        cluster.up()
        print(f"export CEPH_CONF={cluster.conf}")
    else:
        cluster.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
