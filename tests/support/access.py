"""Sub-users, policies and temporary credentials, set up through the real admin CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tencentcloud.common import credential
from tencentcloud.lighthouse.v20200324 import lighthouse_client
from testkit import clients
from testkit.server import Account, Server


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"version": "2.0", "statement": list(statements)}


def allow(actions: list[str], resources: list[str], **extra: Any) -> dict[str, Any]:
    return {"effect": "allow", "action": actions, "resource": resources, **extra}


def deny(actions: list[str], resources: list[str], **extra: Any) -> dict[str, Any]:
    return {"effect": "deny", "action": actions, "resource": resources, **extra}


def instance_resource(root: Account, instance_id: str, region: str = "ap-guangzhou") -> str:
    return f"qcs::lighthouse:{region}:uin/{root.uin}:instance/{instance_id}"


def snapshot_resource(root: Account, snapshot_id: str, region: str = "ap-guangzhou") -> str:
    return f"qcs::lighthouse:{region}:uin/{root.uin}:snapshot/{snapshot_id}"


def sub_user(
    server: Server, root: Account, name: str, document: dict[str, Any] | None, tmp: Path
) -> Account:
    """A sub-user with ``document`` attached and one API key."""
    server.admin("user", "create", root.name, name, "--json")
    if document is not None:
        path = tmp / f"{name}.json"
        path.write_text(json.dumps(document))
        server.admin("user", "attach-policy", root.name, name, "--file", str(path), "--json")
    key = server.admin("key", "create", "--account", root.name, "--user", name, "--json")
    return Account(name, root.uin, root.app_id, key["SecretId"], key["SecretKey"])


def sts(
    server: Server,
    root: Account,
    tmp: Path,
    *,
    user: str | None = None,
    duration: int = 600,
    session_policy: dict[str, Any] | None = None,
) -> dict[str, Any]:
    args = ["sts", "issue", "--account", root.name, "--duration", str(duration), "--json"]
    if user is not None:
        args += ["--user", user]
    if session_policy is not None:
        path = tmp / f"session-{duration}-{user}.json"
        path.write_text(json.dumps(session_policy))
        args += ["--policy", str(path)]
    result: dict[str, Any] = server.admin(*args)
    return result


def token_client(
    server: Server,
    creds: dict[str, Any],
    token: str | None = "",
    region: str = "ap-guangzhou",
    **options: str,
) -> lighthouse_client.LighthouseClient:
    """A client signing with temporary credentials; ``token=""`` means the issued one."""
    cred = credential.Credential(
        creds["TmpSecretId"], creds["TmpSecretKey"], creds["Token"] if token == "" else token
    )
    return lighthouse_client.LighthouseClient(
        cred, region, clients.profile(server.endpoint, **options)
    )
