"""The real SLURM cluster of the `slurm` tests: started once per session by the first test that
asks for it, stopped when the session ends; skipped (saying how to enable it) where Debian's
slurm-wlm and munge are not installed."""

from __future__ import annotations

import pytest

from tests.helpers import slurm


@pytest.fixture(scope="session")
def slurm_cluster():
    why = slurm.missing()
    if why:
        pytest.skip(why)
    cluster = slurm.start()
    try:
        yield cluster
    finally:
        slurm.stop(cluster)
