"""Shared fixtures. Tests compose the real configs (tlbench.config.app), never hand-built dicts,
and never download: data is the embedded digits set or tiny files written into tmp_path."""

from __future__ import annotations

import os

import pytest
import torch

from tests.helpers.cli import TINY
from tlbench.config import compose

# Tests run on 2 cores next to each other's processes; one intra-op thread pool is plenty.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True, scope="session")
def _precision_cache(tmp_path_factory):
    """`trainer.precision=auto` measures bf16 vs fp32 once per network and shape and caches it
    per machine (tlbench.training.precision_probe): one cache for the whole session (command
    line runs inherit it), never the user's."""
    old = os.environ.get("TLBENCH_PRECISION_CACHE")
    os.environ["TLBENCH_PRECISION_CACHE"] = str(tmp_path_factory.mktemp("precision_cache"))
    yield
    if old is None:
        os.environ.pop("TLBENCH_PRECISION_CACHE", None)
    else:
        os.environ["TLBENCH_PRECISION_CACHE"] = old


@pytest.fixture
def cfg_factory(tmp_path):
    """compose(overrides) with the run dir inside tmp_path."""

    def make(*overrides: str, tiny: bool = True):
        return compose(
            [
                *(TINY if tiny else []),
                f"paths.output_dir={tmp_path / 'run'}",
                f"paths.cache_dir={tmp_path / 'cache'}",
                *overrides,
            ]
        )

    return make


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty, private torch hub cache (TORCH_HOME), so tests see exactly the weights they place."""
    home = tmp_path / "torch_home"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return home
