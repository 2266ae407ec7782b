"""`checkpoints/last.ckpt`: the end of the latest finished epoch, written after EVERY epoch.

Why not `ModelCheckpoint(save_last=True)`: in Lightning 2.6 a monitored ModelCheckpoint writes
`last.ckpt` only "whenever a checkpoint file gets saved", i.e. when `best.ckpt` improves. A
10-epoch run whose best epoch was 8 then had no copy of its final weights, and a SIGKILL after
epoch 6 resumed from epoch 1. So `best.ckpt` stays a plain monitored ModelCheckpoint
(conf/callbacks/default.yaml, `save_last: false`; written atomically like every checkpoint, by
the trainer's AtomicCheckpointIO) and this callback owns `last.ckpt`:

- It is a `Checkpoint`, so Lightning runs it after every other callback: its
  `on_train_epoch_end` comes after the metrics.csv row and after `best.ckpt` of the same epoch.
  A kill between the row and the checkpoint re-runs that one epoch; its row is rewritten.
- The file is written through the trainer's AtomicCheckpointIO (callbacks/checkpoint_io.py,
  like `best.ckpt`): beside its target, then renamed, so a SIGKILL or a full disk in the middle
  of the write leaves the previous epoch's complete `last.ckpt`, never a truncated one.
- What a resume restores exactly: weights, optimizer and scheduler state, epoch and step, the
  best-checkpoint bookkeeping. Not restored: the data order of the following epochs (Lightning
  does not checkpoint the RNG streams, and putting back the global RNG states at train start
  was measured not to reproduce the shuffles), so weights after a resume are not bit-identical
  to an uninterrupted run's; LR per epoch, metrics rows and TensorBoard steps are.
- Fixed file name, no `-vN` versions: a re-run never leaves two candidates behind.
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
