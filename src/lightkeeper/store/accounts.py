"""Accounts and their API keys (at most two per principal, as in the real console)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy import delete as sql_delete

from lightkeeper.domain import ids
from lightkeeper.store.database import write
from lightkeeper.store.tables import accounts, api_keys, users

MAX_KEYS_PER_PRINCIPAL = 2
FIRST_UIN = 100000000001
FIRST_APP_ID = 1250000001


class AccountError(Exception):
    """A refused admin operation; the message is shown to the operator as is."""


@dataclass(frozen=True)
class Account:
    id: int
    name: str
    uin: str
    app_id: int


@dataclass(frozen=True)
class ApiKey:
    secret_id: str
    secret_key: str
    enabled: bool
    created_at: dt.datetime
    user: str | None = None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


class AccountStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, name: str) -> tuple[Account, ApiKey]:
        """A new account with its first key, in one transaction."""
        created = self._create(name, only_if_none=False)
        assert created is not None
        return created

    def create_first(self, name: str) -> tuple[Account, ApiKey] | None:
        """The first account, unless the database holds one: asked and created in one write
        transaction, so that nodes starting together on an empty database create one."""
        return self._create(name, only_if_none=True)

    def _create(self, name: str, *, only_if_none: bool) -> tuple[Account, ApiKey] | None:
        if not name or len(name) > 64:
            raise AccountError("account name must be 1 to 64 characters")
        with write(self.engine) as conn:
            count = conn.scalar(select(func.count()).select_from(accounts)) or 0
            if only_if_none and count:
                return None
            if conn.scalar(select(accounts.c.id).where(accounts.c.name == name)) is not None:
                raise AccountError(f"account {name!r} already exists")
            uin, app_id = str(FIRST_UIN + count), FIRST_APP_ID + count
            result = conn.execute(
                insert(accounts).values(name=name, uin=uin, app_id=app_id, created_at=_now())
            )
            account_id = int(result.inserted_primary_key[0])  # type: ignore[index]
            key = self._insert_key(conn, account_id, None)
        return Account(account_id, name, uin, app_id), key

    def get(self, name: str) -> Account:
        with self.engine.connect() as conn:
            row = conn.execute(select(accounts).where(accounts.c.name == name)).first()
        if row is None:
            raise AccountError(f"account {name!r} does not exist")
        return Account(row.id, row.name, row.uin, row.app_id)

    def all(self) -> list[Account]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(accounts).order_by(accounts.c.id)).all()
        return [Account(r.id, r.name, r.uin, r.app_id) for r in rows]

    def count(self) -> int:
        with self.engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(accounts)) or 0

    # keys -----------------------------------------------------------------

    def create_key(self, account_name: str) -> ApiKey:
        account = self.get(account_name)
        return self.insert_key_for(account.id, None, f"account {account_name!r}")

    def list_keys(self, account_name: str) -> list[ApiKey]:
        account = self.get(account_name)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(api_keys, users.c.name.label("user_name"))
                .outerjoin(users, users.c.id == api_keys.c.user_id)
                .where(api_keys.c.account_id == account.id)
                .order_by(api_keys.c.created_at, api_keys.c.secret_id)
            ).all()
        return [
            ApiKey(r.secret_id, r.secret_key, bool(r.enabled), r.created_at, r.user_name)
            for r in rows
        ]

    def set_key_enabled(self, account_name: str, secret_id: str, enabled: bool) -> None:
        account = self.get(account_name)
        with write(self.engine) as conn:
            result = conn.execute(
                update(api_keys)
                .where(api_keys.c.secret_id == secret_id, api_keys.c.account_id == account.id)
                .values(enabled=int(enabled))
            )
        if result.rowcount == 0:
            raise AccountError(f"key {secret_id!r} does not belong to account {account_name!r}")

    def delete_key(self, account_name: str, secret_id: str) -> None:
        account = self.get(account_name)
        with write(self.engine) as conn:
            result = conn.execute(
                sql_delete(api_keys).where(
                    api_keys.c.secret_id == secret_id, api_keys.c.account_id == account.id
                )
            )
        if result.rowcount == 0:
            raise AccountError(f"key {secret_id!r} does not belong to account {account_name!r}")

    def insert_key_for(self, account_id: int, user_id: int | None, owner: str) -> ApiKey:
        """A new key for a principal that has fewer than two."""
        with write(self.engine) as conn:
            condition = (
                api_keys.c.user_id.is_(None) if user_id is None else api_keys.c.user_id == user_id
            )
            existing = conn.scalar(
                select(func.count())
                .select_from(api_keys)
                .where(api_keys.c.account_id == account_id, condition)
            )
            if (existing or 0) >= MAX_KEYS_PER_PRINCIPAL:
                raise AccountError(f"{owner} already has {MAX_KEYS_PER_PRINCIPAL} keys")
            return self._insert_key(conn, account_id, user_id)

    @staticmethod
    def _insert_key(conn: object, account_id: int, user_id: int | None) -> ApiKey:
        key = ApiKey(ids.new_secret_id(), ids.new_secret_key(), True, _now())
        conn.execute(  # type: ignore[attr-defined]
            insert(api_keys).values(
                secret_id=key.secret_id,
                secret_key=key.secret_key,
                account_id=account_id,
                user_id=user_id,
                enabled=1,
                created_at=key.created_at,
            )
        )
        return key
