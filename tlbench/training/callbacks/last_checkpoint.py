"""`checkpoints/last.ckpt`: the end of the latest finished epoch, written after EVERY epoch.

Lightning's `ModelCheckpoint(save_last=True)` writes `last.ckpt` only when a monitored checkpoint
is saved, so `best.ckpt` stays a plain ModelCheckpoint and this `Checkpoint` (run after every
other callback) owns `last.ckpt`, written atomically through the trainer's AtomicCheckpointIO,
under a fixed name. What a resume restores, and what not:
docs/architecture.md, "Resume and interruption".
"""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.callbacks import Checkpoint


class LastCheckpoint(Checkpoint):
    """Write `<dirpath>/last.ckpt` (full training state) at the end of every training epoch."""

    FILENAME = "last.ckpt"

    def __init__(self, dirpath: str | Path) -> None:
        self.dirpath = Path(dirpath)
        self.last_model_path = ""  # the name ModelCheckpoint uses; read by training.run

    @property
    def path(self) -> Path:
        return self.dirpath / self.FILENAME

    def on_fit_start(self, trainer, pl_module) -> None:
        """After the restore: a resumed run with no epoch left to train (killed during its test)
        still names the last.ckpt it was resumed from."""
        if trainer.ckpt_path and self.path.is_file():
            self.last_model_path = str(self.path)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:
            return
        # Every rank calls it (it has a barrier); Lightning writes on global rank 0 only.
        trainer.save_checkpoint(self.path, weights_only=False)
        self.last_model_path = str(self.path)
