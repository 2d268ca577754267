"""How ``serve`` logs: readable lines for people, the access log as pure JSON lines.

One formatter for everything made each access-log line ``INFO {json}``: neither a JSON line a
log shipper or ``jq`` takes as is, nor nicer to read. The access log now has a handler of its
own that writes the record's message alone, one JSON object per line; every other logger
keeps ``LEVEL message``. Both go to stderr, as before.
"""

from __future__ import annotations

import logging
import sys

ACCESS_LOGGER = "lightkeeper.access"  # api/observability.py's ``access_log``


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(levelname)s %(message)s")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access = logging.getLogger(ACCESS_LOGGER)
    access.addHandler(handler)
    access.propagate = False  # its level is still the root's: --log-level warning silences it
