"""What a network returns, read one way everywhere: main logits, auxiliary logits, the loss.

Most classifiers return a logits tensor. torchvision's googlenet and inception_v3 return a
namedtuple in train mode while their auxiliary heads are on (`GoogLeNetOutputs(logits,
aux_logits2, aux_logits1)`, `InceptionOutputs(logits, aux_logits)`), and scripted ones return it
in eval mode too, with None for a head that is off. Any tuple is read the same way: its first
element is the main logits, the others auxiliary logits (None skipped).

Every place that runs a network goes through here -- the training step, the precision probe,
feature extraction, evaluate/predict (through `TransferModule.forward`) and export -- so a family
with extra outputs is taught once, and the probe times the very loss training computes.
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
