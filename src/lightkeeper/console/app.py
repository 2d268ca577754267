"""Serve the console's static files, with the headers that keep them safe.

Only the files of ``static/`` by exact name (no directory walking), each with a strict
Content-Security-Policy (scripts and styles from this origin only: no inline script, no
eval), no framing (``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``), no MIME
sniffing and no Referer, so that nothing on a page can leak the session's credentials.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from starlette.responses import RedirectResponse, Response
from starlette.types import Receive, Scope, Send

PREFIX = "/console"

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cache-control": "no-store",
}
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


def _files() -> dict[str, bytes]:
    """Every static file by name, read once (a few tens of kB)."""
    root = resources.files("lightkeeper.console").joinpath("static")
    return {entry.name: entry.read_bytes() for entry in root.iterdir() if entry.is_file()}


def console_app() -> Any:
    files = _files()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        name = scope["path"][len(PREFIX) :].lstrip("/") or "index.html"
        response: Response
        if scope["path"] == PREFIX:
            response = RedirectResponse(f"{PREFIX}/", 302)
        elif scope["method"] not in ("GET", "HEAD"):
            response = Response("method not allowed\n", 405, media_type="text/plain")
        elif name in files and "." in name:
            suffix = name[name.rindex(".") :]
            response = Response(files[name], 200, media_type=_TYPES.get(suffix, "text/plain"))
        else:
            response = Response("not found\n", 404, media_type="text/plain")
        response.headers.update(SECURITY_HEADERS)
        await response(scope, receive, send)

    return app
