"""Every checkpoint a run writes (`best.ckpt`, `last.ckpt`, `interrupted.ckpt`) goes through
`AtomicCheckpointIO`, Lightning's public CheckpointIO plugin (training.trainer passes it as
`Trainer(plugins=[...])`).

Why not Lightning's own TorchCheckpointIO: it saves through an fsspec transaction, which writes
to a temporary file in the system temp folder and *moves* it into place. When the run dir is on
another file system than /tmp, that move is a copy: killed half-way it left `best.ckpt` at 0 bytes
and a 41 MB orphan in /tmp. Here the temporary file is written beside its target
(tlbench.atomic) and renamed over it, so a kill or a full disk leaves the previous complete file.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import TorchCheckpointIO

from tlbench import atomic


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose local saves are write-beside-then-rename."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
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
