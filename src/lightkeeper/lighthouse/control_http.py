"""The control API over HTTP: JSON endpoints under ``/lightkeeper-api/``, outside API 3.0.

Served only with ``serve --control-api``, and only to a caller presenting the token printed at
start (``Authorization: Bearer <token>``; compared in constant time). Anything else is 401
before the body is read. Requests and answers are JSON objects with the API's PascalCase
names; a request that cannot be done is 400 with ``{"Error": why}``, never a traceback.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lightkeeper import storage
from lightkeeper.lighthouse.admin import AdminError
from lightkeeper.lighthouse.control import Control, ControlError
from lightkeeper.store.accounts import AccountError

logger = logging.getLogger("lightkeeper.control")

PREFIX = "/lightkeeper-api"
_REFUSED = (ControlError, AdminError, AccountError, storage.StorageError, ValueError)

Handler = Callable[[dict[str, Any], Request], Any]


def control_app(control: Control, token: str) -> Starlette:
    """The ASGI app mounted at ``PREFIX`` (api/app.py ``mounts``)."""

    def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            presented = request.headers.get("authorization", "")
            if not hmac.compare_digest(presented.encode(), f"Bearer {token}".encode()):
                return JSONResponse({"Error": "control token missing or wrong"}, 401)
            body: dict[str, Any] = {}
            if request.method in ("POST", "PUT"):
                raw = await request.body()
                try:
                    body = json.loads(raw) if raw.strip() else {}
                except ValueError:
                    return JSONResponse({"Error": "the body is not JSON"}, 400)
                if not isinstance(body, dict):
                    return JSONResponse({"Error": "the body must be a JSON object"}, 400)
            try:
                answer = await run_in_threadpool(handler, body, request)
            except _REFUSED as exc:
                return JSONResponse({"Error": str(exc) or type(exc).__name__}, 400)
            except (KeyError, TypeError) as exc:
                return JSONResponse({"Error": f"missing or bad field: {exc}"}, 400)
            except Exception:
                logger.exception("control request %s %s failed", request.method, request.url.path)
                return JSONResponse({"Error": "internal error (see the server log)"}, 500)
            return JSONResponse(answer if answer is not None else {})

        return run

    admin = control.admin

    def reset(body: dict[str, Any], request: Request) -> Any:
        return control.reset()

    def seed(body: dict[str, Any], request: Request) -> Any:
        value = body.get("Seed")
        if value is not None and not isinstance(value, int):
            raise ControlError("Seed must be an integer or null")
        control.seed(value)
        return {"Seed": value}

    def timing(body: dict[str, Any], request: Request) -> Any:
        return control.timing(
            operation_seconds=_number(body, "OperationSeconds"),
            transition_seconds=_number(body, "TransitionSeconds"),
            manual=_flag(body, "Manual"),
        )

    def advance(body: dict[str, Any], request: Request) -> Any:
        percent = body.get("Percent", 100)
        if not isinstance(percent, int) or isinstance(percent, bool):
            raise ControlError("Percent must be an integer 0..100")
        control.advance(_text(body, "SnapshotId"), percent)

    def faults(body: dict[str, Any], request: Request) -> Any:
        if request.method == "DELETE":
            control.world.faults.clear()
        elif request.method == "POST":
            target = body.get("Target", "call")
            if target not in ("call", "job"):
                raise ControlError('Target must be "call" or "job"')
            count = body.get("Count", 1)
            if not isinstance(count, int) or isinstance(count, bool):
                raise ControlError("Count must be an integer")
            code = body.get("Code")
            if code is not None and not isinstance(code, str):
                raise ControlError("Code must be an error code")
            control.fail_next(
                _text(body, "Action"), code, count, target, _number(body, "Delay") or 0.0
            )
        return {"Faults": control.world.faults.listing()}

    def state(body: dict[str, Any], request: Request) -> Any:
        if request.method == "POST":
            return control.import_state(body)
        return control.export_state()

    def accounts(body: dict[str, Any], request: Request) -> Any:
        return control.create_account(_text(body, "Account"))

    def account(body: dict[str, Any], request: Request) -> Any:
        return control.credentials(request.path_params["name"])

    def users(body: dict[str, Any], request: Request) -> Any:
        return control.create_user(_text(body, "Account"), _text(body, "User"), body.get("Policy"))

    def instances(body: dict[str, Any], request: Request) -> Any:
        return admin.create_instance(
            _text(body, "Account"),
            _text(body, "Region"),
            zone=body.get("Zone"),
            name=body.get("InstanceName"),
            disk_size_gb=body.get("DiskSizeGb", 40),
            bundle_type=body.get("BundleType", "GENERAL_BUNDLE"),
            state=body.get("InstanceState", "RUNNING"),
            blueprint_id=body.get("BlueprintId") or control.default_blueprint,
            tags=body.get("Tags") or {},
        )

    def disk(body: dict[str, Any], request: Request) -> Any:
        instance_id = request.path_params["instance_id"]
        if request.method == "POST":
            try:
                data = base64.b64decode(_text(body, "Data"), validate=True)
            except binascii.Error:
                raise ControlError("Data must be base64") from None
            admin.write_disk(instance_id, _integer(body, "Offset"), data)
            return {"Written": len(data)}
        query = request.query_params
        if "length" in query:
            offset, length = int(query.get("offset", "0")), int(query["length"])
            data = admin.read_disk(instance_id, offset, length)
            return {"Data": base64.b64encode(data).decode()}
        if query.get("digest") == "checksum":
            return {"Checksum": admin.disk_checksum(instance_id)}
        return {"Sha256": admin.disk_sha256(instance_id)}

    routes = [
        Route("/reset", endpoint(reset), methods=["POST"]),
        Route("/seed", endpoint(seed), methods=["POST"]),
        Route("/timing", endpoint(timing), methods=["GET", "POST"]),
        Route("/advance", endpoint(advance), methods=["POST"]),
        Route("/faults", endpoint(faults), methods=["GET", "POST", "DELETE"]),
        Route("/state", endpoint(state), methods=["GET", "POST"]),
        Route("/accounts", endpoint(accounts), methods=["POST"]),
        Route("/accounts/{name}", endpoint(account), methods=["GET"]),
        Route("/users", endpoint(users), methods=["POST"]),
        Route("/instances", endpoint(instances), methods=["POST"]),
        Route("/instances/{instance_id}/disk", endpoint(disk), methods=["GET", "POST"]),
    ]
    return Starlette(routes=routes)


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ControlError(f"{name} must be a non-empty string")
    return value


def _integer(body: dict[str, Any], name: str) -> int:
    value = body.get(name, 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ControlError(f"{name} must be a non-negative integer")
    return value


def _number(body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ControlError(f"{name} must be a number")
    return float(value)


def _flag(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise ControlError(f"{name} must be true or false")
    return value
