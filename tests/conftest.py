"""Shared fixtures. Tests compose the real configs (tlbench.config.app), never hand-built dicts,
and never download: data is the embedded digits set or tiny files written into tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tlbench.config import REPO_ROOT, compose

# Tests run on 2 cores next to each other's processes; one intra-op thread pool is plenty.
torch.set_num_threads(min(2, os.cpu_count() or 1))

TINY = [
    "data.samples_per_class=8",  # 80 training images
    "data.image_size=32",
    "data.batch_size=16",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "logger=none",
]


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


def run_cli(*args: str, cwd: Path = REPO_ROOT, env: dict | None = None, timeout: int = 600):
    """`python -m tlbench ...` in a subprocess, as a user would type it."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tlbench", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
