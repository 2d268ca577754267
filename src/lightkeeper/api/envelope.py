"""The ``{"Response": {...}}`` envelope, sent with exactly ``Content-Type: application/json``.

The SDK recognises an error only when the content type is exactly that string; with
``; charset=utf-8`` it would read an error envelope as an empty success.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from lightkeeper.errors import ApiError

CONTENT_TYPE = "application/json"


class JsonEnvelope(Response):
    media_type = None  # set the header ourselves: Starlette would append "; charset=utf-8"

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(orjson.dumps({"Response": body}), status_code=200)
        self.headers["content-type"] = CONTENT_TYPE


def success(reply: dict[str, Any], request_id: str) -> JsonEnvelope:
    return JsonEnvelope({**reply, "RequestId": request_id})


def failure(error: ApiError, request_id: str, language: str) -> JsonEnvelope:
    return JsonEnvelope(
        {"Error": {"Code": error.code, "Message": error.message(language)}, "RequestId": request_id}
    )
