"""STS ``GetFederationToken`` (service ``sts``, version 2018-08-13), the one STS action the web
console needs: its sign-in signs this single call with the key the user typed, and keeps only
the temporary credentials it answers (docs/behaviour.md, "The web console").

Served through its own API 3.0 front end (the same signature, replay, rate-limit and error
rules as Lighthouse's, a credential scope of ``sts``) at ``/console/sts``. The temporary
credentials act as exactly the caller (the root, or the sub-user with its policies; a
``Policy`` may only narrow them), so signing in grants nothing the key did not; temporary
credentials cannot mint more (a session could otherwise be extended for ever).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lightkeeper.api.integers import Int64
from lightkeeper.api.registry import Action, Context, Reply
from lightkeeper.errors import ApiError
from lightkeeper.store.accounts import AccountError
from lightkeeper.store.principals import UserStore

SERVICE = "sts"
VERSION = "2018-08-13"
MAX_SECONDS = 7200  # Tencent's own limit for GetFederationToken
DEFAULT_SECONDS = 1800


class GetFederationTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    Name: str = Field(min_length=1, max_length=64)
    Policy: str | None = None
    DurationSeconds: Int64 | None = None
    Tags: list[Any] | None = None


def sts_registry(users: UserStore) -> dict[str, Action]:
    def federation_token(ctx: Context, request: GetFederationTokenRequest) -> Reply:
        principal = ctx.principal
        if principal.token_sha256 is not None:
            raise ApiError("UnauthorizedOperation")
        seconds = request.DurationSeconds or DEFAULT_SECONDS
        if not 1 <= seconds <= MAX_SECONDS:
            raise ApiError("InvalidParameterValue", name="DurationSeconds", value=seconds)
        policy = None
        if request.Policy is not None:
            try:
                policy = json.loads(request.Policy)
            except ValueError:
                raise ApiError("InvalidParameterValue", name="Policy", value="(not JSON)") from None
        try:
            session = users.issue_session(
                principal.account_name, principal.user_name, seconds, policy
            )
        except (AccountError, ValueError) as exc:  # a policy that does not parse, mostly
            raise ApiError("InvalidParameterValue", name="Policy", value=str(exc)[:100]) from exc
        expires = dt.datetime.fromtimestamp(session.expired_time, dt.UTC)
        return {
            "Credentials": {
                "Token": session.token,
                "TmpSecretId": session.tmp_secret_id,
                "TmpSecretKey": session.tmp_secret_key,
            },
            "ExpiredTime": session.expired_time,
            "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    return {
        "GetFederationToken": Action(
            "GetFederationToken",
            GetFederationTokenRequest,
            federation_token,
            rate_limit=20,
            region_required=False,
        )
    }
