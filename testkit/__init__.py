"""Drive the real server as its users do: start ``lightkeeper serve``, call it with the official
SDK or raw signed HTTP, build a world with ``lightkeeper admin``, and the engines that load it
(the crash harness, the request storm, the fuzzer).

One home for what ``tests/``, ``tools/`` and ``bench/`` share: each of them imports this
package, and it imports none of them (nor pytest), so the test suite and the long-run tools
never import each other.
"""
