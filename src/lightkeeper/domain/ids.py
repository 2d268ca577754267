"""Resource identifiers in Tencent's formats: ``lhins-`` + 8 of ``[a-z0-9]`` and friends."""

from __future__ import annotations

import re
import secrets
import string

_ALPHABET = string.ascii_lowercase + string.digits
_KEY_ALPHABET = string.ascii_letters + string.digits

INSTANCE = "lhins"
SNAPSHOT = "lhsnap"
DISK = "lhdisk"
BLUEPRINT = "lhbp"
POOL = "lhpool"  # a storage pool (storage/files.py: the id file of a data dir)


def new_id(prefix: str) -> str:
    return f"{prefix}-" + "".join(secrets.choice(_ALPHABET) for _ in range(8))


def is_valid(prefix: str, value: str) -> bool:
    return re.fullmatch(rf"{prefix}-[a-z0-9]{{8}}", value) is not None


def new_secret_id() -> str:
    """``AKID`` + 32 characters, the shape of a real Tencent Cloud SecretId."""
    return "AKID" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(32))


def new_secret_key() -> str:
    return "".join(secrets.choice(_KEY_ALPHABET) for _ in range(32))
