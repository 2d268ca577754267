"""The key cache's freshness rule (api/auth.py ``CachedKeyStore``): a request is answered from a
version read that started after it arrived, so a key disabled by any node before a request
arrives is refused by that request; requests that arrived before a read began share it (issue
#13: one round trip for several requests on PostgreSQL). The end-to-end form, two servers on
one database, is tests/lighthouse/test_postgresql.py."""

from __future__ import annotations

import threading

from lightkeeper.api.auth import CachedKeyStore
from lightkeeper.domain.principal import Principal

KEY = Principal("AKIDcache", "secret", 1, "acme", "100001", 1300000001)


class Database:
    """The credentials and their version counter, as another node may change them."""

    def __init__(self) -> None:
        self.version = 1
        self.enabled = True
        self.version_reads = 0
        self.key_reads = 0

    def read_version(self) -> int:
        self.version_reads += 1
        return self.version

    def find_key(self, secret_id: str, received: float = 0.0) -> Principal | None:
        self.key_reads += 1
        return KEY if self.enabled and secret_id == KEY.secret_id else None

    def disable(self) -> None:
        self.enabled = False
        self.version += 1


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_key_disabled_before_a_request_arrived_is_refused() -> None:
    db, clock = Database(), Clock()
    keys = CachedKeyStore(db, db.read_version, clock=clock)
    assert keys.find_key(KEY.secret_id, received=clock.now) == KEY
    clock.now += 0.001
    assert keys.find_key(KEY.secret_id, received=clock.now) == KEY  # cached
    assert db.key_reads == 1
    db.disable()  # by another node, committed before the next request arrives
    clock.now += 0.001
    assert keys.find_key(KEY.secret_id, received=clock.now) is None
    assert db.version_reads == 3  # each request came after the last read had started


def test_requests_that_arrived_before_a_version_read_began_share_it() -> None:
    db, clock = Database(), Clock()
    keys = CachedKeyStore(db, db.read_version, clock=clock)
    arrived = [clock.now, clock.now + 0.001, clock.now + 0.002]  # waiting together
    clock.now += 0.003  # the first of them reaches the lookup
    assert [keys.find_key(KEY.secret_id, received=t) for t in arrived] == [KEY] * 3
    assert db.version_reads == 1
    assert db.key_reads == 1


def test_a_read_that_began_before_a_request_arrived_is_not_shared_with_it() -> None:
    db, clock = Database(), Clock()
    keys = CachedKeyStore(db, db.read_version, clock=clock)
    keys.find_key(KEY.secret_id, received=clock.now)  # a read that started at 100.0
    db.disable()
    assert keys.find_key(KEY.secret_id, received=clock.now + 0.0005) is None  # a new read
    assert db.version_reads == 2


def test_nothing_is_cached_while_the_version_cannot_be_read() -> None:
    db, clock = Database(), Clock()
    keys = CachedKeyStore(db, lambda: None, clock=clock)
    for _ in range(3):
        clock.now += 0.001
        assert keys.find_key(KEY.secret_id, received=clock.now) == KEY
    assert db.key_reads == 3


def test_a_read_under_way_is_waited_for_only_by_requests_that_arrived_before_it_began() -> None:
    db, clock = Database(), Clock()
    sent = threading.Event()
    may_answer = threading.Event()

    def slow_version() -> int:
        version = db.read_version()  # the database's answer as of when the read is sent
        sent.set()
        assert may_answer.wait(10)
        return version

    keys = CachedKeyStore(db, slow_version, clock=clock)
    results: dict[str, Principal | None] = {}

    def lookup(name: str, received: float) -> threading.Thread:
        thread = threading.Thread(
            target=lambda: results.__setitem__(name, keys.find_key(KEY.secret_id, received))
        )
        thread.start()
        return thread

    early = clock.now - 0.001
    first = lookup("first", early)
    assert sent.wait(10)  # its read is under way, started at clock.now
    waiter = lookup("arrived before the read began", early)
    clock.now += 0.001
    sent.clear()
    late = lookup("arrived after the read began", clock.now)
    assert sent.wait(10)  # it sent a read of its own: it may not use the first one
    may_answer.set()
    for thread in (first, waiter, late):
        thread.join()
    assert results == dict.fromkeys(
        ["first", "arrived before the read began", "arrived after the read began"], KEY
    )
    assert db.version_reads == 2  # the first's, shared by the waiter, and the late one's
