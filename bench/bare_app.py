"""The bare-stack baseline: the same uvicorn server and settings as ``lightkeeper serve`` in
front of a plain ASGI callable that reads the body and answers a fixed JSON envelope with the
same headers, no authentication, no database. ``python -m bench.bare_app --port P``."""

from __future__ import annotations

import argparse
import uuid
from typing import Any

import orjson

from lightkeeper.cli.main import uvicorn_options
from lightkeeper.config import Settings


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    body = orjson.dumps(
        {"Response": {"TotalCount": 0, "SnapshotSet": [], "RequestId": str(uuid.uuid4())}}
    )
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-length", str(len(body)).encode()),
                (b"content-type", b"application/json"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    import uvicorn

    from lightkeeper.cli.http import Server

    parser = argparse.ArgumentParser(prog="python -m bench.bare_app")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    options = uvicorn_options(Settings(log_level=args.log_level))
    Server(uvicorn.Config(app, host="127.0.0.1", port=args.port, **options)).run()


if __name__ == "__main__":
    main()
