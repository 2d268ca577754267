"""How temporary credentials are kept: the session token only as its SHA-256, and expired
sessions purged (issue #11). The TmpSecretKey itself must stay: HMAC verification needs it."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.lighthouse.v20200324 import models
from testkit import world
from testkit.server import Server

from lightkeeper.store.database import MIGRATIONS, open_engine, sqlite_url, write
from tests.support.access import sts, token_client

RETENTION = 12 * 3600  # an expired session is kept (answering TokenFailure) this long


def _database(server: Server) -> sqlite3.Connection:
    return sqlite3.connect(server.data_dir / "lightkeeper.db")


def _code(call: Callable[[], object]) -> str:
    with pytest.raises(TencentCloudSDKException) as info:
        call()
    return str(info.value.code)


def _regions(server: Server, creds: dict[str, object]) -> int:
    c = token_client(server, creds)
    return int(c.DescribeRegions(models.DescribeRegionsRequest()).TotalCount)


def test_the_session_token_is_stored_only_as_its_sha256(server: Server, tmp_path: Path) -> None:
    root = world.new_account(server, "sts")
    creds = sts(server, root, tmp_path)
    assert _regions(server, creds) == 15
    token = str(creds["Token"])
    with _database(server) as db:
        rows = db.execute("SELECT * FROM sessions").fetchall()
        columns = [d[0] for d in db.execute("SELECT * FROM sessions").description]
    assert rows and all(token not in str(value) for row in rows for value in row)
    assert "token" not in columns
    stored = dict(zip(columns, next(r for r in rows if creds["TmpSecretId"] in r), strict=True))
    assert stored["token_sha256"] == hashlib.sha256(token.encode()).hexdigest()


def test_expired_sessions_are_purged_at_start_and_when_sessions_are_issued(
    make_server: Callable[..., Server], tmp_path: Path
) -> None:
    server = make_server("--transition-seconds", "0")
    root = world.new_account(server, "sts")
    old, recent, live = (sts(server, root, tmp_path, duration=600) for _ in range(3))
    with _database(server) as db:
        for creds, age in ((old, RETENTION + 60), (recent, 60)):
            db.execute(
                "UPDATE sessions SET expires_at = ? WHERE tmp_secret_id = ?",
                (time.time() - age, creds["TmpSecretId"]),
            )
    # An expired session still answers TokenFailure for a while ...
    assert _code(lambda: _regions(server, recent)) == "AuthFailure.TokenFailure"

    sts(server, root, tmp_path)  # issuing a session purges the long-expired ones
    with _database(server) as db:
        ids = {r[0] for r in db.execute("SELECT tmp_secret_id FROM sessions")}
    assert old["TmpSecretId"] not in ids
    assert {recent["TmpSecretId"], live["TmpSecretId"]} <= ids
    assert _code(lambda: _regions(server, old)) == "AuthFailure.SecretIdNotFound"
    assert _regions(server, live) == 15

    with _database(server) as db:  # ... and a start purges them too
        db.execute(
            "UPDATE sessions SET expires_at = ? WHERE tmp_secret_id = ?",
            (time.time() - RETENTION - 60, recent["TmpSecretId"]),
        )
    server.stop()
    server.start()
    with _database(server) as db:
        ids = {r[0] for r in db.execute("SELECT tmp_secret_id FROM sessions")}
    assert recent["TmpSecretId"] not in ids and live["TmpSecretId"] in ids


def test_the_migration_hashes_the_tokens_of_existing_sessions(
    make_server: Callable[..., Server],
) -> None:
    server = make_server("--transition-seconds", "0", start=False)
    server.data_dir.mkdir(mode=0o700)
    engine = open_engine(sqlite_url(server.data_dir))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with write(engine) as conn:  # a database as the release before this one left it
        config.attributes["connection"] = conn
        command.upgrade(config, "0005")
    engine.dispose()
    token = "t" * 64
    with _database(server) as db:
        db.execute(
            "INSERT INTO accounts (id, name, uin, app_id, created_at) "
            "VALUES (1, 'old', '100000000001', 1250000001, '2026-11-30 00:00:00')"
        )
        db.execute(
            "INSERT INTO sessions (tmp_secret_id, tmp_secret_key, token, account_id, "
            "expires_at, created_at) VALUES (?, ?, ?, 1, ?, '2026-11-30 00:00:00')",
            ("AKID" + "o" * 32, "k" * 32, token, time.time() + 600),
        )
    server.start()
    creds = {"TmpSecretId": "AKID" + "o" * 32, "TmpSecretKey": "k" * 32, "Token": token}
    assert _regions(server, creds) == 15  # still valid, now checked against its hash
    assert _code(lambda: _regions(server, {**creds, "Token": "u" * 64})) == (
        "AuthFailure.TokenFailure"
    )
    with _database(server) as db:
        assert db.execute("SELECT token_sha256 FROM sessions").fetchall() == [
            (hashlib.sha256(token.encode()).hexdigest(),)
        ]
        triggers = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
    assert {"auth_version_sessions_insert", "auth_version_sessions_delete"} <= triggers
