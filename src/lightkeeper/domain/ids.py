"""Resource identifiers in Tencent's formats: ``lhins-`` + 8 of ``[a-z0-9]`` and friends.

Resource ids, RequestIds, instance UUIDs and addresses come from one source that a test can
``seed`` (the control API's ``seed``, like moto's seeded ids): from then on the same calls
give the same ids. Secrets never do: keys always come from ``secrets``.
"""

from __future__ import annotations

import random
import re
import secrets
import string
import threading
import uuid

_ALPHABET = string.ascii_lowercase + string.digits
_KEY_ALPHABET = string.ascii_letters + string.digits

INSTANCE = "lhins"
SNAPSHOT = "lhsnap"
DISK = "lhdisk"
BLUEPRINT = "lhbp"
DISK_BACKUP = "lhbak"
POOL = "lhpool"  # a storage pool (storage/files.py: the id file of a data dir)


class _Source:
    """The random source of every non-secret identifier: the system's, until seeded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._random: random.Random = secrets.SystemRandom()

    def seed(self, seed: int | None) -> None:
        """A deterministic sequence from ``seed`` on; None: back to the system's source."""
        with self._lock:
            self._random = secrets.SystemRandom() if seed is None else random.Random(seed)

    def chars(self, alphabet: str, count: int) -> str:
        with self._lock:
            return "".join(self._random.choice(alphabet) for _ in range(count))

    def below(self, limit: int) -> int:
        with self._lock:
            return self._random.randrange(limit)

    def uuid4(self) -> uuid.UUID:
        with self._lock:
            return uuid.UUID(int=self._random.getrandbits(128), version=4)


_source = _Source()
seed = _source.seed
random_below = _source.below  # (private addresses and the like)


def new_id(prefix: str) -> str:
    return f"{prefix}-" + _source.chars(_ALPHABET, 8)


def new_uuid() -> str:
    """A version-4 UUID string (RequestIds, instance UUIDs), seeded with the ids."""
    return str(_source.uuid4())


def is_valid(prefix: str, value: str) -> bool:
    return re.fullmatch(rf"{prefix}-[a-z0-9]{{8}}", value) is not None


def new_secret_id() -> str:
    """``AKID`` + 32 characters, the shape of a real Tencent Cloud SecretId."""
    return "AKID" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(32))


def new_secret_key() -> str:
    return "".join(secrets.choice(_KEY_ALPHABET) for _ in range(32))
