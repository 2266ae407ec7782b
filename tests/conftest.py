"""Shared fixtures. Tests compose the real configs (tlbench.config.app), never hand-built dicts,
and never download: data is the embedded digits set or tiny files written into tmp_path."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

# -- Hermetic: before anything imports torch or tlbench ------------------------------------------
# Every cache, home and data folder a test (or a process it starts) could touch points into one
# throwaway folder, so the suite behaves the same on a fresh machine as on one with datasets,
# weights and caches installed by hand. tests/helpers/hermetic/ holds the guard that fails a
# test which still reads or writes a forbidden path (README, "Development").
_REPO = Path(__file__).resolve().parent.parent
_GUARD_DIR = Path(__file__).resolve().parent / "helpers" / "hermetic"
HERMETIC = Path(tempfile.mkdtemp(prefix="tlbench-tests-"))
_real_home = os.path.expanduser("~")
_FORBID = [
    "/usr/share/datasets",  # Debian's dataset packages, installed by hand or not
    os.environ.get("XDG_CACHE_HOME") or os.path.join(_real_home, ".cache"),
    os.environ.get("TORCH_HOME") or os.path.join(_real_home, ".cache", "torch"),
    str(_REPO / "data"),
    str(_REPO / ".cache"),
    str(_REPO / "outputs"),
]
os.environ.update(
    HOME=str(HERMETIC / "home"),
    XDG_CACHE_HOME=str(HERMETIC / "home" / ".cache"),
    XDG_CONFIG_HOME=str(HERMETIC / "home" / ".config"),
    XDG_DATA_HOME=str(HERMETIC / "home" / ".local" / "share"),
    TORCH_HOME=str(HERMETIC / "torch_home"),
    MPLCONFIGDIR=str(HERMETIC / "matplotlib"),
    TORCHINDUCTOR_CACHE_DIR=str(HERMETIC / "inductor"),
    TLBENCH_PRECISION_CACHE=str(HERMETIC / "precision_cache"),
    TLBENCH_DATA_DIR=str(HERMETIC / "data"),
    TLBENCH_CACHE_DIR=str(HERMETIC / "feature_cache"),
    TLBENCH_HERMETIC_LOG=str(HERMETIC / "violations.log"),
    TLBENCH_HERMETIC_FORBID=os.pathsep.join(_FORBID),
    TLBENCH_HERMETIC_REPO=str(_REPO),
    PYTHONPATH=os.pathsep.join(p for p in (str(_GUARD_DIR), os.environ.get("PYTHONPATH")) if p),
)
(HERMETIC / "home").mkdir()
(HERMETIC / "violations.log").touch()
sys.path.insert(0, str(_GUARD_DIR))
import hermetic_guard  # noqa: E402

hermetic_guard.install()

import pytest  # noqa: E402
import torch  # noqa: E402

from tests.helpers.cli import TINY  # noqa: E402
from tlbench.config import compose  # noqa: E402

# Tests run on 2 cores next to each other's processes; one intra-op thread pool is plenty.
torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_unconfigure(config):
    shutil.rmtree(HERMETIC, ignore_errors=True)


@pytest.fixture(autouse=True)
def _hermetic():
    """Fail the test during which any process touched a forbidden path (see the top of this file)."""
    log = HERMETIC / "violations.log"
    start = log.stat().st_size
    yield
    with open(log, encoding="utf-8") as f:
        f.seek(start)
        found = sorted({line.split(" ", 2)[-1].strip() for line in f if line.strip()})
    if found:
        pytest.fail(
            "the test touched paths outside its temporary folders (the suite must be hermetic): "
            + ", ".join(found[:10])
        )


@pytest.fixture
def cfg_factory(tmp_path):
    """compose(overrides) with the run dir inside tmp_path; Hydra's refusals (a typed schema's
    wrong type) worded as the command line words them."""
    from tlbench.config.preflight import compose_error
    from tlbench.config.validation import validate_config

    def make(*overrides: str, tiny: bool = True):
        overrides = [
            *(TINY if tiny else []),
            f"paths.output_dir={tmp_path / 'run'}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            *overrides,
        ]
        try:
            return compose(overrides)
        except Exception as exc:
            raise compose_error(exc, overrides, check=validate_config) from None

    return make


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty, private torch hub cache (TORCH_HOME), so tests see exactly the weights they place."""
    home = tmp_path / "torch_home"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return home
