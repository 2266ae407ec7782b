"""Training images/second and epoch time (always attached by training.run). Checkpoint writes
inside an epoch (best.ckpt after validation) are taken out of `time/epoch_seconds`, as they are
out of `fit_seconds` (`checkpoint_seconds` in summary.json; callbacks/checkpoint_io.py)."""

from __future__ import annotations

import time

import lightning as L

from tlbench.training.callbacks.checkpoint_io import seconds_of


class EpochClock(L.Callback):
    """Training images/second (data loading included, validation excluded) and epoch time.
    Not Lightning 2.6.6's ThroughputMonitor (source read): it syncs CUDA after every batch and
    sends windowed step rates to the loggers only, none of the epoch values metrics.csv needs."""

    def __init__(self) -> None:
        self.images = 0
        self.train_seconds = 0.0
        self._epoch_start = self._epoch_images = 0
        self._epoch_ckpt = 0.0
        self._train_done = True

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch_start, self._epoch_images, self._train_done = time.perf_counter(), 0, False
        self._epoch_ckpt = seconds_of(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._epoch_images += len(batch[1])

    def _close_training_part(self, trainer) -> None:
        if self._train_done:
            return
        self._train_done = True
        seconds = time.perf_counter() - self._epoch_start
        self.images += self._epoch_images
        self.train_seconds += seconds
        if seconds > 0 and self._epoch_images:
            trainer.lightning_module.log("train/images_per_sec", self._epoch_images / seconds)

    def on_validation_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking and trainer.training:
            self._close_training_part(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._close_training_part(trainer)
        writes = seconds_of(trainer) - self._epoch_ckpt
        pl_module.log("time/epoch_seconds", time.perf_counter() - self._epoch_start - writes)

    @property
    def images_per_second(self) -> float | None:
        return self.images / self.train_seconds if self.train_seconds > 0 else None
