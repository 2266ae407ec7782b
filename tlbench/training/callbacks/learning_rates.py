"""`lr/<group>` per optimizer parameter group (conf/callbacks/default.yaml)."""

from __future__ import annotations

import lightning as L

from tlbench.errors import one_of
from tlbench.training.callbacks.log_steps import logs_this_step


class LearningRates(L.Callback):
    """`lr/<group>` for every optimizer parameter group (named by tlbench.training.lr_groups: `head`,
    `backbone`, `stage3`, ...). Kept over Lightning 2.6.6's LearningRateMonitor (tried): it raises
    without a logger (logger=none) and names groups `lr-AdamW/head` unless a scheduler is named."""

    INTERVALS = ("epoch", "step")

    def __init__(self, logging_interval: str = "epoch") -> None:
        if logging_interval not in self.INTERVALS:
            raise one_of(
                "callbacks.learning_rates.logging_interval", logging_interval, self.INTERVALS
            )
        self.logging_interval = logging_interval

    @staticmethod
    def values(trainer) -> dict[str, float]:
        optimizers = trainer.optimizers
        out = {}
        for i, opt in enumerate(optimizers):
            prefix = "lr" if len(optimizers) == 1 else f"lr/opt{i}"
            for j, group in enumerate(opt.param_groups):
                out[f"{prefix}/{group.get('name') or f'pg{j}'}"] = float(group["lr"])
        return out

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if self.logging_interval == "epoch":
            for name, lr in self.values(trainer).items():
                pl_module.log(name, lr, on_step=False, on_epoch=True)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        # Only when Lightning writes step metrics: a number logged on a GPU run becomes a
        # device tensor by a blocking copy, a sync every step for a value never written.
        if self.logging_interval == "step" and logs_this_step(trainer):
            for name, lr in self.values(trainer).items():
                pl_module.log(name, lr, on_step=True, on_epoch=False, batch_size=1)
