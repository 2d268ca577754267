"""The small records every server on a data dir writes (the null driver's power records,
``drivers.json``) are shared by all of them (two nodes on one pool): concurrent writers of
one record must never trip over each other's temporary file (seen in a stalled-owner storm:
a start failed with FileNotFoundError)."""

from __future__ import annotations

import threading
from pathlib import Path

from lightkeeper.compute.null import NullDriver
from lightkeeper.config import DRIVERS_FILE, build_settings, remember_drivers, remembered_drivers
from lightkeeper.domain.attachment import file_attachment


def test_concurrent_writers_of_one_record_never_fail(tmp_path: Path) -> None:
    drivers = [NullDriver(tmp_path, transition_seconds=0) for _ in range(2)]  # two servers
    drivers[0].create("lhins-shared01", "STOPPED", file_attachment(tmp_path / "disk.img", "raw"))
    failures: list[BaseException] = []

    def flip(driver: NullDriver) -> None:
        try:
            for _ in range(200):
                driver.start("lhins-shared01")
                driver.stop("lhins-shared01", force=False)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=flip, args=(d,)) for d in drivers for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert drivers[1].status("lhins-shared01") in ("RUNNING", "STOPPED")
    assert [p.name for p in (tmp_path / "compute").iterdir()] == ["lhins-shared01.json"]


def test_servers_starting_together_record_the_drivers_once(tmp_path: Path) -> None:
    """The same for the data dir's ``drivers.json``, which every server writes as it starts:
    two nodes sharing a data dir start together."""
    settings = build_settings({"data_dir": tmp_path})
    failures: list[BaseException] = []

    def start() -> None:
        try:
            for _ in range(200):
                remember_drivers(settings)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    recorded = remembered_drivers(tmp_path)
    assert (recorded["storage"], recorded["compute"]) == (settings.storage, settings.compute)
    assert sorted(p.name for p in tmp_path.iterdir()) == [DRIVERS_FILE]
