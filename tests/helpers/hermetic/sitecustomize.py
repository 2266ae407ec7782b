"""Loaded by every Python process the test suite starts (conftest.py puts this folder on
PYTHONPATH): the same hermetic guard as the pytest process itself (hermetic_guard.py)."""

import os

if os.environ.get("TLBENCH_HERMETIC_LOG"):
    import hermetic_guard

    hermetic_guard.install()
