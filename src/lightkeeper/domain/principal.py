"""Who signed a request: an account's root or one of its sub-users, with its policies.

Shared by the API front end (which authenticates it) and the store (which loads it), so it
lives below both.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from lightkeeper.domain.cam import Policy


@dataclass(frozen=True)
class Principal:
    """Who signed the request: an account's root or one of its sub-users."""

    secret_id: str
    secret_key: str
    account_id: int
    account_name: str
    uin: str
    app_id: int
    user_name: str | None = None  # None for the root account
    # CAM: every policy set must allow a request; the root account has none to satisfy.
    policies: tuple[Policy, ...] = ()
    # Temporary credentials only: the SHA-256 (hex) of the session token they require. Only
    # the hash is stored: a token is compared, never used as a key.
    token_sha256: str | None = None
    expires_at: float | None = None

    @property
    def is_root(self) -> bool:
        return self.user_name is None and not self.policies

    @property
    def rate_limit_key(self) -> str:
        """Rate limits count per sub-account; the root counts as its own sub-account."""
        return f"{self.uin}/{self.user_name or ''}"


def token_digest(token: str) -> str:
    """What is stored of a session token: its SHA-256, hex (a token is 64 random characters,
    so a fast hash is enough: there is nothing to brute-force)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
