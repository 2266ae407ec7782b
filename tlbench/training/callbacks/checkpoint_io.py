"""Every checkpoint a run writes (`best.ckpt`, `last.ckpt`, `interrupted.ckpt`) goes through
`AtomicCheckpointIO`, Lightning's public CheckpointIO plugin (training.trainer passes it as
`Trainer(plugins=[...])`): written beside its target (tlbench.atomic) and renamed over it, so a
kill or a full disk leaves the previous complete file. It also times every write (`seconds`,
`writes`), which `training.run` records as `checkpoint_seconds` instead of fit time.
Why not Lightning's TorchCheckpointIO: docs/architecture.md, "Atomic writes".
"""

from __future__ import annotations

import time
from typing import Any

import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import TorchCheckpointIO

from tlbench import atomic


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose local saves are write-beside-then-rename, timed."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds = 0.0  # spent in save_checkpoint, all writes of this trainer
        self.writes = 0

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        start = time.perf_counter()
        try:
            self._save(checkpoint, path, storage_options)
        finally:  # a failed write cost its time too
            self.seconds += time.perf_counter() - start
            self.writes += 1

    def _save(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        protocol = get_filesystem(path).protocol
        if storage_options is not None or "file" not in (
            protocol if isinstance(protocol, tuple) else (protocol,)
        ):
            return super().save_checkpoint(checkpoint, path, storage_options)  # remote: fsspec's
        # Through a Python file object: a full disk is an OSError with its errno, and the file
        # is closed (its space freed) at once, not when the traceback is collected.
        with atomic.replacing(path) as tmp, open(tmp, "wb") as f:
            torch.save(checkpoint, f)
        return None


def seconds_of(trainer) -> float:
    """Seconds this trainer spent writing checkpoints (0.0 with another CheckpointIO, e.g. a
    test's bare Trainer)."""
    return float(getattr(trainer.strategy.checkpoint_io, "seconds", 0.0))
