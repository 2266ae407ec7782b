"""What a network returns, read one way everywhere: main logits, auxiliary logits, the loss.

A tensor is the logits; any tuple (googlenet's and inception_v3's outputs while their auxiliary
heads are on) is read as the main logits first, then auxiliary logits (None skipped). Every place
that runs a network goes through here, so a family with extra outputs is taught once.
Why: docs/architecture.md, "Models".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

AUX_LOSS_WEIGHT = 0.3  # GoogLeNet paper's weight for auxiliary classifier losses


def split(out) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(main logits, auxiliary logits) of a network's output."""
    if isinstance(out, torch.Tensor):
        return out, []
    if isinstance(out, tuple) and out and isinstance(out[0], torch.Tensor):
        return out[0], [a for a in out[1:] if a is not None]
    # A bug (a network tlbench does not know how to read), not a user's mistake: keep the trace.
    raise TypeError(
        f"cannot read logits from a network output of type {type(out).__name__}: expected a "
        "tensor or a tuple whose first element is the logits (tlbench.models.outputs)"
    )


def logits(out) -> torch.Tensor:
    """The main logits of a network's output."""
    return split(out)[0]


def loss(out, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(training loss, main logits): cross-entropy of the main logits plus AUX_LOSS_WEIGHT times
    that of each auxiliary head."""
    main, aux = split(out)
    value = F.cross_entropy(main, y)
    if aux:
        value = value + AUX_LOSS_WEIGHT * sum(F.cross_entropy(a, y) for a in aux)
    return value, main


class Logits(nn.Module):
    """A network with its main logits out, whatever its mode (what export traces)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return logits(self.net(x))
