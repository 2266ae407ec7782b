"""Training on cached features (TransferModule.use_cached_features): a training batch is a slice
of many minibatches of the head's inputs, each with its own optimizer step (manual optimization).
"""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch


def slice_steps(
    module: L.LightningModule,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    x: torch.Tensor,
    y: torch.Tensor,
    minibatch: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A slice of cached features: one optimizer step per minibatch, in order (the slice is
    a run of the epoch's shuffled order, so these are a shuffled loader's minibatches).
    `loss_fn(x, y) -> (loss, logits)`; returns the slice's mean loss and all its logits."""
    optimizer, losses, logits = module.optimizers(), [], []
    # Lightning's wrapped step runs every callback's hooks and counts `global_step` (~10 ms a
    # step on a CPU, far more than a linear head's arithmetic). Within a slice the plain
    # optimizer steps; the slice's last minibatch goes through Lightning, so hooks run and
    # `global_step` counts once per slice (so curves use x = epoch: TransferModule). The slice runs
    # inside the precision plugin's autocast; only fp16 ("16-mixed") needs Lightning's
    # gradient scaler on every step, so then every step goes through Lightning.
    # Under DDP a plain `loss.backward()` is never all-reduced (the ranks' heads drift apart):
    # every backward goes through `manual_backward`, which readies DDP's reducer for it, so each
    # step's gradients are averaged over ranks; the plain optimizer step then applies the same
    # averaged gradients on every rank (and `global_step` still counts once per slice).
    scaled = module.trainer.precision in ("16-mixed", "16")
    synced = module.trainer.world_size > 1
    starts = range(0, len(y), minibatch)
    for start in starts:
        loss, out = loss_fn(x[start : start + minibatch], y[start : start + minibatch])
        optimizer.zero_grad(set_to_none=True)
        if scaled or start == starts[-1]:
            module.manual_backward(loss)
            optimizer.step()
        else:
            if synced:
                module.manual_backward(loss)
            else:
                loss.backward()
            optimizer.optimizer.step()
        losses.append(loss.detach() * len(out))
        logits.append(out.detach())
    return torch.stack(losses).sum() / len(y), torch.cat(logits)
