"""Stop a run whose loss stops being a number, with the step and learning rates that did it.

A NaN or infinite loss never recovers: every later step only spreads NaN through the weights,
and the run would burn its remaining epochs producing a checkpoint of garbage. The callback
checks the loss Lightning hands back after every training step (one `isfinite` on a scalar:
free) and raises a TlbenchError, so `summary.json` says `failed` with the reason, and
`checkpoints/last.ckpt` stays the last good epoch (ModelCheckpoint does not save on exceptions).
"""

from __future__ import annotations

import math

import lightning as L
import torch

from tlbench.errors import TlbenchError


def _loss(outputs) -> torch.Tensor | None:
    if isinstance(outputs, dict):
        outputs = outputs.get("loss")
    return outputs if isinstance(outputs, torch.Tensor) else None


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
            f"rates {shown}; the run was stopped there (checkpoints/last.ckpt is the last good epoch)",
            key="optimizer.lr",
            value=base,
            allowed="a learning rate small enough for this model and data (typical: 1e-4 .. 1e-1)",
            fix="lower optimizer.lr (e.g. 10x), check the images for NaN/inf values, or try "
            "trainer.precision=32-true",
        )
