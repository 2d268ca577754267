"""The pytest plugin (entry point ``pytest11``: loaded in every suite once Lightkeeper is
installed; or ``pytest -p lightkeeper.testing.plugin``).

Fixtures:

- ``lighthouse_server`` (session): one real server per test process (so one per xdist
  worker), started on first use, stopped at the end of the session.
- ``lighthouse`` (function): that server, reset before the test (an empty world, default
  timing, no faults), with the timing of the test's ``lighthouse_timing`` marker applied.

Marker: ``@pytest.mark.lighthouse_timing(operation_seconds=..., transition_seconds=...,
manual=True)``. Options: ``--lighthouse-option NAME=VALUE`` (repeatable) passes ``serve``
settings to the session's server, e.g. ``--lighthouse-option storage=qcow2``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lightkeeper.testing.server import LighthouseServer


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lightkeeper", "Lightkeeper (a local Tencent Cloud Lighthouse)")
    group.addoption(
        "--lighthouse-option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="A `lightkeeper serve` setting for the lighthouse_server fixture (repeatable).",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "lighthouse_timing(operation_seconds=None, transition_seconds=None, manual=None): "
        "the Lightkeeper timing the `lighthouse` fixture sets for this test",
    )


def _options(config: pytest.Config) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for item in config.getoption("lighthouse_option"):
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise pytest.UsageError(f"--lighthouse-option wants NAME=VALUE, not {item!r}")
        flags = {"true": True, "false": False}  # for --control-api style switches
        options[name.replace("-", "_")] = flags.get(value.lower(), value)
    return options


@pytest.fixture(scope="session")
def lighthouse_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LighthouseServer]:
    """One real Lightkeeper server for this test process."""
    data_dir = tmp_path_factory.mktemp("lightkeeper")
    with LighthouseServer(data_dir, **_options(request.config)) as server:
        yield server


@pytest.fixture
def lighthouse(
    lighthouse_server: LighthouseServer, request: pytest.FixtureRequest
) -> LighthouseServer:
    """The session's server with an empty world, and this test's timing applied."""
    lighthouse_server.reset()
    marker = request.node.get_closest_marker("lighthouse_timing")
    if marker is not None:
        lighthouse_server.timing(*marker.args, **marker.kwargs)
    return lighthouse_server
