"""Input sizes a backbone accepts, checked before any data is read.

Three facts per model, read off the source's own metadata rather than a hand-kept table:
`minimum` (the smallest side giving a valid forward pass), `fixed` (the only side accepted, when
baked in at construction) and `size_kwarg` (the constructor argument that sets that size).
Why: docs/architecture.md, "Models".
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from tlbench.errors import TlbenchError


@dataclass(frozen=True)
class InputSize:
    minimum: int = 1
    fixed: int | None = None
    size_kwarg: str | None = None


def check(model: str, rule: InputSize, size: int, from_data: bool) -> None:
    """Raise a TlbenchError naming data.image_size when `size` does not fit `rule`."""
    key = "data.image_size" if from_data else "model (its default input size)"
    if rule.fixed is not None and size != rule.fixed:
        raise TlbenchError(
            f"{model} with these pretrained weights only accepts {rule.fixed} px inputs (its size "
            f"is baked into the weights, e.g. ViT position embeddings), not {size} px",
            key=key,
            value=size,
            allowed=str(rule.fixed),
            fix=f"set data.image_size={rule.fixed} (or data.image_size=null to take the model's size), "
            f"or train from scratch (strategy=scratch), which builds {model} for any valid size",
        )
    if size < rule.minimum:
        raise TlbenchError(
            f"{model} needs inputs of at least {rule.minimum} px (smaller ones shrink to nothing "
            f"inside the network), got {size} px",
            key=key,
            value=size,
            allowed=f">= {rule.minimum}",
            fix=f"set data.image_size={max(rule.minimum, 32)} or larger, or pick a model made for "
            f"small images (model=mini_vgg, model=lenet5, or a ResNet with model.small_input=true)",
        )


def probe(make: Callable[[], nn.Module], size: int, train: bool = False) -> Exception | None:
    """Build on the meta device and run a forward pass of shapes only: no memory, no compute.

    Returns the exception the network raises for a `size` px input, or None if it runs.
    """
    try:
        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")
            net = make().train(train)
            with torch.no_grad():
                net(torch.empty(2, 3, size, size))
    except Exception as exc:  # any shape/assert error means "not at this size"
        return exc
    return None


def check_constructible(model: str, make: Callable[[], nn.Module], size: int) -> None:
    """For random-init models built for the data's size: the size must suit the architecture."""
    exc = probe(make, size)
    if exc is not None:
        raise TlbenchError(
            f"{model} cannot be built for {size} px inputs ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'shape check failed'})",
            key="data.image_size",
            value=size,
            fix="use a size the architecture divides evenly (ViT: a multiple of the patch size, "
            "e.g. 32 or 64 for *_16/*_32 models; MaxViT: 224), or data.image_size=null for the "
            "model's default",
        )
