"""Sub-users, their CAM policies, and temporary credentials (STS sessions).

Policies are validated when attached (``cam.parse_policy``) and stored as the JSON the
operator gave, so ``admin user show`` returns exactly what was attached.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select

from lightkeeper.domain import cam, ids
from lightkeeper.domain.principal import Principal, token_digest
from lightkeeper.store.accounts import AccountError, AccountStore, ApiKey
from lightkeeper.store.database import write
from lightkeeper.store.resources import utcnow
from lightkeeper.store.tables import accounts, api_keys, policies, sessions, users

MAX_SESSION_SECONDS = 43200  # 12 hours, as STS allows
# An expired session keeps answering AuthFailure.TokenFailure this long (a clear "expired"
# for a client still using it), then its row is purged and its TmpSecretId is unknown.
EXPIRED_SESSION_RETENTION = 43200


@dataclass(frozen=True)
class User:
    id: int
    account_id: int
    name: str
    uin: str


@dataclass(frozen=True)
class Session:
    tmp_secret_id: str
    tmp_secret_key: str
    token: str
    expired_time: int


def user_policies(conn: Connection, user_id: int) -> cam.Policy:
    """All statements of all the user's policies (an empty policy allows nothing)."""
    rows = conn.scalars(select(policies.c.document).where(policies.c.user_id == user_id))
    combined = cam.Policy()
    for document in rows:
        combined = combined + cam.parse_policy(json.loads(document))
    return combined


class UserStore:
    def __init__(self, engine: Engine, accounts_store: AccountStore) -> None:
        self.engine = engine
        self.accounts = accounts_store

    def create(self, account_name: str, name: str) -> User:
        account = self.accounts.get(account_name)
        if not name or len(name) > 64:
            raise AccountError("user name must be 1 to 64 characters")
        with write(self.engine) as conn:
            if self._find(conn, account.id, name) is not None:
                raise AccountError(f"user {name!r} already exists in {account_name!r}")
            count = conn.scalar(select(func.count()).select_from(users)) or 0
            uin = str(200000000001 + count)
            result = conn.execute(
                insert(users).values(account_id=account.id, name=name, uin=uin, created_at=utcnow())
            )
            user_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        return User(user_id, account.id, name, uin)

    def get(self, account_name: str, name: str) -> User:
        account = self.accounts.get(account_name)
        with self.engine.connect() as conn:
            user = self._find(conn, account.id, name)
        if user is None:
            raise AccountError(f"user {name!r} does not exist in {account_name!r}")
        return user

    @staticmethod
    def _find(conn: Connection, account_id: int, name: str) -> User | None:
        row = conn.execute(
            select(users).where(users.c.account_id == account_id, users.c.name == name)
        ).first()
        return User(row.id, row.account_id, row.name, row.uin) if row else None

    def attach_policy(self, account_name: str, user_name: str, document: Any, name: str) -> None:
        """Validate, then attach (replacing a policy of the same name)."""
        cam.parse_policy(document)
        user = self.get(account_name, user_name)
        with write(self.engine) as conn:
            conn.execute(
                delete(policies).where(policies.c.user_id == user.id, policies.c.name == name)
            )
            conn.execute(
                insert(policies).values(
                    user_id=user.id, name=name, document=json.dumps(document), created_at=utcnow()
                )
            )

    def detach_policy(self, account_name: str, user_name: str, name: str) -> None:
        user = self.get(account_name, user_name)
        with write(self.engine) as conn:
            result = conn.execute(
                delete(policies).where(policies.c.user_id == user.id, policies.c.name == name)
            )
        if not result.rowcount:
            raise AccountError(f"user {user_name!r} has no policy named {name!r}")

    def describe(self, account_name: str, user_name: str) -> dict[str, Any]:
        user = self.get(account_name, user_name)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(policies.c.name, policies.c.document)
                .where(policies.c.user_id == user.id)
                .order_by(policies.c.name)
            ).all()
        return {
            "Account": account_name,
            "Name": user.name,
            "Uin": user.uin,
            "Policies": {r.name: json.loads(r.document) for r in rows},
        }

    def create_key(self, account_name: str, user_name: str) -> ApiKey:
        user = self.get(account_name, user_name)
        return self.accounts.insert_key_for(user.account_id, user.id, f"user {user_name!r}")

    def issue_session(
        self,
        account_name: str,
        user_name: str | None,
        duration: int,
        policy: Any | None = None,
    ) -> Session:
        """Temporary credentials for a user (or the root); ``policy`` narrows what they may do."""
        if not 1 <= duration <= MAX_SESSION_SECONDS:
            raise AccountError(f"duration must be between 1 and {MAX_SESSION_SECONDS} seconds")
        if policy is not None:
            cam.parse_policy(policy)
        account = self.accounts.get(account_name)
        user = self.get(account_name, user_name) if user_name is not None else None
        expires = int(time.time()) + duration
        session = Session(
            ids.new_secret_id(), ids.new_secret_key(), secrets.token_urlsafe(48), expires
        )
        with write(self.engine) as conn:
            purge_expired_sessions(conn)
            conn.execute(
                insert(sessions).values(
                    tmp_secret_id=session.tmp_secret_id,
                    tmp_secret_key=session.tmp_secret_key,
                    token_sha256=token_digest(session.token),
                    account_id=account.id,
                    user_id=user.id if user else None,
                    policy=json.dumps(policy) if policy is not None else None,
                    expires_at=float(expires),
                    created_at=utcnow(),
                )
            )
        return session


def purge_expired_sessions(conn: Connection, now: float | None = None) -> int:
    """Delete sessions that expired more than ``EXPIRED_SESSION_RETENTION`` seconds ago; run
    whenever a session is issued and at every server start. Returns how many went."""
    cutoff = (time.time() if now is None else now) - EXPIRED_SESSION_RETENTION
    return int(conn.execute(delete(sessions).where(sessions.c.expires_at < cutoff)).rowcount)


def find_session(conn: Connection, tmp_secret_id: str) -> dict[str, Any] | None:
    """A session row joined with its account and user (expired ones too, until purged: the
    token check reports those as TokenFailure, not as an unknown key)."""
    row = conn.execute(
        select(
            sessions,
            accounts.c.name.label("account_name"),
            accounts.c.uin,
            accounts.c.app_id,
            users.c.name.label("user_name"),
        )
        .join(accounts, accounts.c.id == sessions.c.account_id)
        .outerjoin(users, users.c.id == sessions.c.user_id)
        .where(sessions.c.tmp_secret_id == tmp_secret_id)
    ).first()
    return dict(row._mapping) if row else None


class CredentialStore:
    """The ``KeyStore`` the API front end authenticates against (api/auth.py): API keys of
    accounts and sub-users, and temporary credentials, with the policies each carries."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def find_key(self, secret_id: str, received: float = 0.0) -> Principal | None:
        """The ``KeyStore`` the API front end authenticates against: an enabled API key of
        an account or sub-user, or a temporary credential (checked for its token later).
        Read now, so as of no earlier than any ``received``."""
        query = (
            select(
                api_keys.c.secret_id,
                api_keys.c.secret_key,
                api_keys.c.user_id,
                accounts.c.id,
                accounts.c.name,
                accounts.c.uin,
                accounts.c.app_id,
                users.c.name.label("user_name"),
            )
            .join(accounts, accounts.c.id == api_keys.c.account_id)
            .outerjoin(users, users.c.id == api_keys.c.user_id)
            .where(api_keys.c.secret_id == secret_id, api_keys.c.enabled == 1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
            if row is not None:
                granted = () if row.user_id is None else (user_policies(conn, row.user_id),)
                return Principal(
                    secret_id=row.secret_id,
                    secret_key=row.secret_key,
                    account_id=row.id,
                    account_name=row.name,
                    uin=row.uin,
                    app_id=row.app_id,
                    user_name=row.user_name,
                    policies=granted,
                )
            session = find_session(conn, secret_id)
            if session is None:
                return None
            granted = (
                () if session["user_id"] is None else (user_policies(conn, session["user_id"]),)
            )
        if session["policy"] is not None:
            granted = (*granted, cam.parse_policy(json.loads(session["policy"])))
        return Principal(
            secret_id=session["tmp_secret_id"],
            secret_key=session["tmp_secret_key"],
            account_id=session["account_id"],
            account_name=session["account_name"],
            uin=session["uin"],
            app_id=session["app_id"],
            user_name=session["user_name"],
            policies=granted,
            token_sha256=session["token_sha256"],
            expires_at=session["expires_at"],
        )
