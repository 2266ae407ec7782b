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
