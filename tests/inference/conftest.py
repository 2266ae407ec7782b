"""One tiny trained run shared by the inference tests (tests.helpers.checkpoints.train_tiny)."""

from __future__ import annotations

import pytest

from tests.helpers.checkpoints import train_tiny


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A finished LeNet-5 run on digits 0-2 (checkpoints/best.ckpt and last.ckpt)."""
    run_dir = tmp_path_factory.mktemp("tiny") / "run"
    train_tiny(run_dir)
    return run_dir
