"""Rebuild the LR schedule when a resumed run trains for a different number of epochs.

The remaining epochs follow the schedule of the NEW length, as a straight run with that
`max_epochs` would have them: when the checkpoint's scheduler hyperparameters differ from the
current ones, `on_train_start` steps a fresh scheduler to the restored position and loads its
state into the restored one; summary.json records `schedule_rebuilt`. ReduceLROnPlateau is left
as restored. Why: docs/architecture.md, "Resume and interruption".
"""

from __future__ import annotations

import logging
import warnings

import lightning as L
from torch.optim.lr_scheduler import ReduceLROnPlateau

from tlbench.config.instantiate import instantiate

log = logging.getLogger("tlbench")


class ScheduleRebuild(L.Callback):
    """See the module doc. After a rebuild, `findings` holds `schedule_rebuilt` for the run's
    summary (the callback never writes the summary itself)."""

    def __init__(self) -> None:
        self.findings: dict = {}
        self._saved: dict | None = None  # the checkpoint's scheduler hyperparameters

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        hp = checkpoint.get("hyper_parameters") or {}
        self._saved = hp.get("scheduler") if "scheduler" in hp else None

    def on_train_start(self, trainer, pl_module) -> None:
        saved, self._saved = self._saved, None
        now = pl_module.hparams.get("scheduler")
        if not saved or not now or dict(saved) == dict(now):
            return  # same schedule: Lightning's restored state is already exact
        done = []
        for config in trainer.lr_scheduler_configs:
            restored = config.scheduler
            if isinstance(restored, ReduceLROnPlateau):
                continue
            steps = restored.last_epoch
            optimizer = restored.optimizer
            for group in optimizer.param_groups:
                group["lr"] = group.setdefault("initial_lr", group["lr"])
            with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()"
                warnings.simplefilter("ignore", UserWarning)
                fresh = instantiate(now, "scheduler")(optimizer)
                while fresh.last_epoch < steps:
                    fresh.step()
            restored.load_state_dict(fresh.state_dict())
            done.append(steps)
        if done:
            changed = {k: (saved.get(k), now.get(k)) for k in now if saved.get(k) != now.get(k)}
            log.warning(
                "resume: the LR schedule changed (%s); it is rebuilt for the new settings: the "
                "remaining epochs follow it as a run started with them would (README, Reliability)",
                ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items()),
            )
            self.findings = {
                "schedule_rebuilt": {
                    "changed": {k: [a, b] for k, (a, b) in changed.items()},
                    "at_step": done[0],
                }
            }
