"""Stop a run whose loss stops being a number, with the step and learning rates that did it.

A NaN or infinite loss never recovers: every later step only spreads NaN through the weights,
and the run would burn its remaining epochs producing a checkpoint of garbage. The callback
checks the loss Lightning hands back after every training step (one `isfinite` on a scalar:
free) and raises a TlbenchError, so `summary.json` says `failed` with the reason, and
`checkpoints/last.ckpt` stays the last good epoch (it is only written at the end of an epoch);
the message says whether such a checkpoint exists yet.
"""

from __future__ import annotations

import math

import lightning as L
import torch

from tlbench.errors import TlbenchError
from tlbench.training.callbacks.last_checkpoint import LastCheckpoint


def _loss(outputs) -> torch.Tensor | None:
    if isinstance(outputs, dict):
        outputs = outputs.get("loss")
    return outputs if isinstance(outputs, torch.Tensor) else None


def _last_good(trainer) -> str:
    """What is left on disk: last.ckpt only exists once an epoch has finished (in this run or
    the one it resumes)."""
    for cb in trainer.checkpoint_callbacks:
        if isinstance(cb, LastCheckpoint) and cb.path.is_file():
            return f"{cb.path} holds the last good epoch, {trainer.current_epoch - 1}"
    return "no epoch had finished, so there is no checkpoint of good weights"


class NonFiniteLoss(L.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = _loss(outputs)
        if loss is None or bool(torch.isfinite(loss.detach()).all()):
            return
        value = float(loss.detach().float().mean())
        lrs = [
            (g.get("name", f"group{i}"), g["lr"])
            for opt in trainer.optimizers
            for i, g in enumerate(opt.param_groups)
        ]
        shown = ", ".join(f"{n}={lr:.3g}" for n, lr in lrs)
        base = (
            pl_module.hparams.get("optimizer", {}).get("lr")
            if hasattr(pl_module, "hparams")
            else None
        )
        raise TlbenchError(
            f"the training loss became {'NaN' if math.isnan(value) else value} at step "
            f"{trainer.global_step} (epoch {trainer.current_epoch}, batch {batch_idx}) with learning "
            f"rates {shown}; the run was stopped there ({_last_good(trainer)})",
            key="optimizer.lr",
            value=base,
            allowed="a learning rate small enough for this model and data (typical: 1e-4 .. 1e-1)",
            fix="lower optimizer.lr (e.g. 10x), check the images for NaN/inf values, or try "
            "trainer.precision=32-true",
        )
