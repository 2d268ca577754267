"""The schema, as SQLAlchemy Core tables. Alembic migrations under ``migrations/`` create it."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

metadata = MetaData()


def _fk(target: str) -> ForeignKey:
    return ForeignKey(target, ondelete="CASCADE")


accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("uin", String(20), nullable=False, unique=True),
    Column("app_id", Integer, nullable=False, unique=True),
    Column("created_at", DateTime, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", Integer, _fk("accounts.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("uin", String(20), nullable=False, unique=True),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("account_id", "name"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("secret_id", String(64), primary_key=True),
    Column("secret_key", String(64), nullable=False),
    Column("account_id", Integer, _fk("accounts.id"), nullable=False),
    Column(
        "user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True
    ),
    Column("enabled", Integer, nullable=False, default=1),
    Column("created_at", DateTime, nullable=False),
)
