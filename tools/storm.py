#!/usr/bin/env python3
"""Request storms against the real server (the engine: ``testkit/storm.py``, which
``tests/reliability/test_storm.py`` runs at CI size).

    .venv/bin/python tools/storm.py --clients 200 --seconds 60 [--storage qcow2]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: testkit

from testkit.storm import main

if __name__ == "__main__":
    sys.exit(main())
