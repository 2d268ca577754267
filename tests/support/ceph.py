"""Ceph for the rbd storage driver's tests: the cluster at ``$CEPH_CONF`` when it is set (CI
starts one: .ci/run), else a private one this session starts itself (testkit/ceph.py), and a
RADOS namespace of its own for each test. Without Ceph the rbd tests are skipped, saying why,
unless ``LIGHTKEEPER_TEST_CEPH=required`` (CI) makes that a failure."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from testkit import ceph


def _unavailable(message: str) -> None:
    if os.environ.get("LIGHTKEEPER_TEST_CEPH") == "required":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def ceph_conf() -> Iterator[Path]:
    try:
        import rados  # noqa: F401
        import rbd  # noqa: F401
    except ImportError:
        _unavailable("python3-rados/python3-rbd are not on this Python's path (./dev links them)")
    conf = os.environ.get("CEPH_CONF")
    if conf:
        if not ceph.reachable(Path(conf)):
            _unavailable(f"no Ceph cluster answers at CEPH_CONF={conf}")
        yield Path(conf)
        return
    if not ceph.installed():
        _unavailable(
            "Ceph is not installed (Debian: apt-get install ceph python3-rbd python3-rados)"
        )
    with ceph.running(Path(tempfile.mkdtemp(prefix="lk-ceph-"))) as cluster:
        os.environ["CEPH_CONF"] = str(cluster.conf)  # what servers and subprocesses use
        yield cluster.conf


@pytest.fixture
def rbd_options(ceph_conf: Path) -> Iterator[dict[str, Any]]:
    """The rbd driver's options for one test: a namespace nobody else uses."""
    with ceph.namespace(ceph_conf, f"t{uuid.uuid4().hex[:12]}") as name:
        yield {"namespace": name}
