"""``lightkeeper.testing``: a real Lightkeeper server for your own tests, and its handle.

    from lightkeeper.testing import LighthouseServer

    with LighthouseServer() as server:
        client = server.client()                      # an official-SDK LighthouseClient
        instance = server.create_instance()           # RUNNING, 1 GB disk, in ap-guangzhou
        ...
        server.reset()                                # an empty world, same server

The server is the real one (``lightkeeper serve`` in a subprocess on a free loopback port,
with ``--control-api``): signatures are checked, jobs are durable, disks hold bytes. What a
test does around its API calls goes through the control API (lighthouse/control_http.py):
``reset``, ``seed``, ``timing`` (manual mode: ``advance``/``complete``), ``fail_next``,
``state``/``load_state``, accounts, sub-users, instances and disk bytes. The pytest plugin
(``lightkeeper.testing.plugin``) wraps it in fixtures.
"""

from __future__ import annotations

from lightkeeper.testing.server import ControlError, LighthouseServer

__all__ = ["ControlError", "LighthouseServer"]
