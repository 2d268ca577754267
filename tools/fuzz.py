#!/usr/bin/env python3
"""Hostile input through the real HTTP interface (the engine: ``testkit/fuzz.py``, which
``tests/reliability/test_fuzz.py`` runs at CI size).

    .venv/bin/python tools/fuzz.py --examples 5000 [--storage qcow2] [--json]
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: testkit

from testkit.fuzz import main

if __name__ == "__main__":
    random.seed(0)
    sys.exit(main())
