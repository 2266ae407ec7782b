"""Running tlbench as a user would, and the overrides that make a run tiny."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tlbench.config import REPO_ROOT

TINY = [
    "data.samples_per_class=8",  # 80 training images
    "data.image_size=32",
    "data.batch_size=16",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "logger=none",
]

# A real run of two optimizer steps per epoch (20 digits images, lenet5, fp32): the shortest run
# that still has epochs, checkpoints and a resume point.
TWO_STEPS = [
    "model=lenet5",
    "strategy=scratch",
    "data.samples_per_class=2",
    "data.batch_size=10",
    "data.val_fraction=0.05",
    "trainer.precision=32-true",
]


def run_cli(
    *args: str,
    cwd: Path = REPO_ROOT,
    env: dict | None = None,
    timeout: int = 600,
    module: str = "tlbench",
):
    """`python -m <module> ...` in a subprocess, as a user would type it (HYDRA_FULL_ERROR only
    where `env` sets it: errors print as users see them)."""
    full_env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
