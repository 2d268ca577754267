"""Authenticate an ``ApiCall``: timestamp window, key lookup, signature, replay.

The key store is injected (``KeyStore``), so this module knows credentials, not databases.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from lightkeeper.api import signature
from lightkeeper.api.integers import ascii_decimal
from lightkeeper.api.wire import ApiCall
from lightkeeper.domain.principal import Principal, token_digest
from lightkeeper.errors import ApiError

TIMESTAMP_WINDOW = 300


class KeyStore(Protocol):
    def find_key(self, secret_id: str, received: float) -> Principal | None:
        """The enabled key with this SecretId, or None, as of no earlier than ``received``
        (``time.monotonic()`` when the request arrived): every change committed before the
        request arrived is seen."""


class CachedKeyStore:
    """``find_key`` answers remembered per SecretId, valid while ``version()`` (a counter the
    database bumps on every change to accounts, users, keys, policies and sessions) is
    unchanged and for at most ``ttl`` seconds. A lookup uses a version read that *started*
    after its request arrived — its own, or one another request began since (requests that
    wait together share one round trip) — so a key disabled or deleted by any process stops
    working with the next request.

    ``version()`` returning None means "cannot tell": nothing is cached then."""

    def __init__(
        self,
        inner: KeyStore,
        version: Callable[[], int | None],
        ttl: float = 30.0,
        max_entries: int = 10000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._version = version
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._cache: dict[str, tuple[int, float, Principal]] = {}
        self._newest: _VersionRead | None = None  # the read started last, done or not
        self._newest_lock = threading.Lock()

    def find_key(self, secret_id: str, received: float) -> Principal | None:
        # Read the version first: a change committed during the lookup below leaves an entry
        # tagged with the older version, which the next request then refuses.
        version = self._version_since(received)
        now = self._clock()
        hit = self._cache.get(secret_id)
        if hit is not None and version is not None and hit[0] == version and now < hit[1]:
            return hit[2]
        principal = self._inner.find_key(secret_id, received)
        if principal is None or version is None:
            self._cache.pop(secret_id, None)
            return principal
        if len(self._cache) >= self._max:
            self._cache.clear()
        self._cache[secret_id] = (version, now + self._ttl, principal)
        return principal

    def _version_since(self, received: float) -> int | None:
        """The version as read by a read that started at or after ``received``: such a read
        saw every change committed before the request arrived. The newest read is shared
        (waited for, if still under way) by every request that arrived before it began."""
        with self._newest_lock:
            read = self._newest
            mine = read is None or read.started < received
            if mine:
                read = self._newest = _VersionRead(self._clock())
        assert read is not None
        if not mine:
            read.done.wait()
            return read.version
        try:
            read.version = self._version()
        finally:
            read.done.set()
        return read.version


@dataclass(eq=False)
class _VersionRead:
    """One read of the version, from the moment it was sent."""

    started: float
    version: int | None = None
    done: threading.Event = field(default_factory=threading.Event)


Nonce = tuple[str, str, str]  # (SecretId, Nonce, Timestamp)


class Nonces(Protocol):
    def first_use(self, key: Nonce, expires: float, now: float) -> bool:
        """Remember ``key`` until ``expires``; False if it is remembered already."""


class LocalNonces:
    """The nonces this process has seen (one node; SQLite)."""

    def __init__(self) -> None:
        self._seen: dict[Nonce, float] = {}
        self._lock = threading.Lock()
        self._next_prune = 0.0

    def first_use(self, key: Nonce, expires: float, now: float) -> bool:
        with self._lock:
            if now >= self._next_prune:
                self._seen = {k: t for k, t in self._seen.items() if t > now}
                self._next_prune = now + 10
            held = self._seen.get(key)
            if held is not None and held > now:
                return False
            self._seen[key] = expires
        return True


class ReplayGuard:
    """Remembers v1 ``(SecretId, Nonce, Timestamp)`` triples for the timestamp window, in
    this process or (``nonces``) in the database every node shares."""

    def __init__(self, window: int = TIMESTAMP_WINDOW, nonces: Nonces | None = None) -> None:
        self._window = window
        self._nonces = nonces if nonces is not None else LocalNonces()

    def check_and_remember(self, key: Nonce, now: float) -> None:
        if not self._nonces.first_use(key, now + 2 * self._window, now):
            raise ApiError.variant("AuthFailure.SignatureFailure#replay")


def _require_int(name: str, value: str | None) -> int:
    """Timestamp and Nonce: ASCII decimal only (``int()`` also reads "١٧…" and " 1_7 ")."""
    if value is None or value == "":
        raise ApiError("MissingParameter", name=name)
    number = ascii_decimal(value, signed=True)
    if number is None:
        raise ApiError("InvalidParameter", name=name)
    return number


def authenticate(
    call: ApiCall, keys: KeyStore, replay: ReplayGuard, service: str, now: float | None = None
) -> Principal:
    """Return the principal that signed ``call`` or raise the matching AuthFailure."""
    now = time.time() if now is None else now
    timestamp = _require_int("Timestamp", call.timestamp)
    try:
        expired = abs(now - timestamp) > TIMESTAMP_WINDOW
    except OverflowError:  # hundreds of digits: no float holds it, and it is not "now"
        expired = True
    if expired:
        raise ApiError("AuthFailure.SignatureExpire")
    if call.scheme == signature.TC3:
        return _authenticate_tc3(call, keys, timestamp, service)
    return _authenticate_v1(call, keys, replay, now)


def _authenticate_tc3(call: ApiCall, keys: KeyStore, timestamp: int, service: str) -> Principal:
    if not call.authorization:
        raise ApiError("AuthFailure.InvalidAuthorization", reason="missing header")
    auth = signature.parse_tc3_authorization(call.authorization)
    principal = keys.find_key(auth.secret_id, call.received)
    if principal is None:
        raise ApiError("AuthFailure.SecretIdNotFound")
    expected_date = time.strftime("%Y-%m-%d", time.gmtime(timestamp))
    if auth.date != expected_date or auth.service != service:
        raise ApiError("AuthFailure.SignatureFailure")
    ok = signature.tc3_matches(
        principal.secret_key,
        auth,
        method=call.method,
        query=call.query,
        headers=call.headers,
        payload=call.body,
        timestamp=call.timestamp or "",
    )
    if not ok:
        raise ApiError("AuthFailure.SignatureFailure")
    return _check_token(principal, call.token, time.time())


def _authenticate_v1(call: ApiCall, keys: KeyStore, replay: ReplayGuard, now: float) -> Principal:
    if call.scheme not in signature.V1_METHODS:
        raise ApiError("InvalidParameterValue", name="SignatureMethod", value=call.scheme)
    nonce = str(_require_int("Nonce", call.common.get("Nonce")))
    secret_id = call.common.get("SecretId")
    if not secret_id:
        raise ApiError("MissingParameter", name="SecretId")
    provided = call.common.get("Signature")
    if not provided:
        raise ApiError("MissingParameter", name="Signature")
    principal = keys.find_key(secret_id, call.received)
    if principal is None:
        raise ApiError("AuthFailure.SecretIdNotFound")
    text = signature.v1_string_to_sign(call.method, call.host, "/", call.raw_v1)
    if not signature.v1_matches(principal.secret_key, call.scheme, text, provided):
        raise ApiError("AuthFailure.SignatureFailure")
    replay.check_and_remember((secret_id, nonce, call.timestamp or ""), now)
    return _check_token(principal, call.token, now)


def _check_token(principal: Principal, token: str | None, now: float) -> Principal:
    """Temporary credentials are only valid with their session token, until they expire."""
    if principal.token_sha256 is None:
        return principal
    if token is None or not hmac.compare_digest(
        token_digest(token).encode(), principal.token_sha256.encode()
    ):
        raise ApiError("AuthFailure.TokenFailure")
    if principal.expires_at is not None and now >= principal.expires_at:
        raise ApiError("AuthFailure.TokenFailure")
    return principal
