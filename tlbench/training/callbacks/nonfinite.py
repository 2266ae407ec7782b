"""Stop a run whose loss stops being a number, with the step and learning rates that did it.

A NaN or infinite loss never recovers, so the callback raises a TlbenchError: `summary.json` says
`failed` with the reason and `checkpoints/last.ckpt` stays the last good epoch. The check stays
on the device and is read only at logging steps, an epoch's last batch, before validation and
before any checkpoint, so a run stops at most one logging interval late, still naming the first
bad step. Why: docs/architecture.md, "The step path".
"""

from __future__ import annotations

import math

import lightning as L
import torch

from tlbench.errors import TlbenchError
from tlbench.training.callbacks.last_checkpoint import LastCheckpoint
from tlbench.training.callbacks.log_steps import logs_this_step


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
    def __init__(self) -> None:
        self._first: torch.Tensor | None = None  # (seen, step, batch, loss), on the device
        self._lrs: dict[int, list] = {}  # batch -> its LRs, since the last check (host floats)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        # The LRs this step uses, kept until the next check: by then the scheduler may have
        # moved on (Lightning steps epoch schedulers before the last batch's hooks).
        self._lrs[batch_idx] = _lrs(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = _loss(outputs)
        if loss is not None:
            self._note(loss.detach(), trainer.global_step, batch_idx)
        if logs_this_step(trainer) or batch_idx + 1 >= trainer.num_training_batches:
            self.check(trainer, pl_module)

    def on_validation_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.check(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.check(trainer, pl_module)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        # raised before the file is written; this process's flag only (no collective here: an
        # interrupt may save on some ranks only)
        self.check(trainer, pl_module, all_ranks=False)

    def _note(self, loss: torch.Tensor, step: int, batch_idx: int) -> None:
        """Remember the first non-finite step on the device (float64: steps stay exact)."""
        value = loss.double().mean()
        if self._first is None or self._first.device != value.device:
            self._first = torch.zeros(4, dtype=torch.float64, device=value.device)
        new = ~torch.isfinite(loss).all() & (self._first[0] == 0)
        # full_like fills on the device: torch.tensor([...], device=) would be a blocking copy
        seen = [torch.full_like(value, v) for v in (1.0, step, batch_idx)]
        self._first = torch.where(new, torch.stack([*seen, value]), self._first)

    def check(self, trainer, pl_module, all_ranks: bool = True) -> None:
        """The one read of the device flag; raises if any step so far had a bad loss. Under DDP
        every rank stops at the same check, also one whose own losses were still finite (its
        peers would otherwise wait for it in the next all-reduce)."""
        first = self._first.tolist() if self._first is not None else [0.0] * 4
        seen, step, batch_idx, value = first
        anywhere = bool(seen)
        if all_ranks and trainer.world_size > 1:
            anywhere = trainer.strategy.reduce_boolean_decision(anywhere, all=False)
        if not anywhere:
            self._lrs.clear()
            return
        if seen:
            at = f"step {int(step)} (epoch {trainer.current_epoch}, batch {int(batch_idx)})"
            where = f"{'NaN' if math.isnan(value) else value} at {at}"
        else:
            where = f"non-finite on another DDP process (epoch {trainer.current_epoch})"
        lrs = self._lrs.get(int(batch_idx)) if seen else None
        raise _error(trainer, pl_module, where, lrs or _lrs(trainer))


def _lrs(trainer) -> list[tuple[str, float]]:
    return [
        (g.get("name", f"group{i}"), g["lr"])
        for opt in trainer.optimizers
        for i, g in enumerate(opt.param_groups)
    ]


def _error(trainer, pl_module, where: str, lrs: list[tuple[str, float]]) -> TlbenchError:
    shown = ", ".join(f"{n}={lr:.3g}" for n, lr in lrs)
    base = (
        pl_module.hparams.get("optimizer", {}).get("lr") if hasattr(pl_module, "hparams") else None
    )
    return TlbenchError(
        f"the training loss became {where} with learning rates {shown}; the run was stopped at "
        f"its next check, step {trainer.global_step} ({_last_good(trainer)})",
        key="optimizer.lr",
        value=base,
        allowed="a learning rate small enough for this model and data (typical: 1e-4 .. 1e-1)",
        fix="lower optimizer.lr (e.g. 10x), check the images for NaN/inf values, or try "
        "trainer.precision=32-true",
    )
