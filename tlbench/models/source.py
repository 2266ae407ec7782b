"""The one interface every model source implements (torchvision, timm, tlbench's own nets, a
checkpoint over any of them). `registry.SOURCES` maps `model.source` to one; adding a source is
one class and one table row. `weights` is always the source's own weights name (None = random).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from torch import nn

from tlbench.models.sizes import InputSize
from tlbench.preprocess import Preprocess


@dataclass
class Net:
    """What a source builds: the network with heads for the new classes, and where it came from."""

    net: nn.Module
    head_names: list[str]  # main head first, then auxiliary heads
    weights: str  # origin of the weights: "random", "torchvision:IMAGENET1K_V1", ...
    notes: list[str] = field(default_factory=list)


@runtime_checkable
class Source(Protocol):
    prefix: str  # how `model=` spells this source's names: model=<prefix><name>

    def check(self, name: str, weights: str | None) -> None:
        """Refuse an unknown name or weights with a TlbenchError, without building anything."""

    def supports_small_input(self, name: str) -> bool:
        """Whether `model.small_input=true` (a CIFAR-style stem) applies to `name`."""

    def input_size(self, name: str, weights: str | None) -> InputSize:
        """The input sides the network accepts with these weights."""

    def preprocess(self, name: str, weights: str | None) -> Preprocess:
        """What the weights expect (random init: the family's default)."""

    def constructor(self, name: str, image_size: int | None) -> Callable[[], nn.Module]:
        """A zero-argument random-init builder (for meta-device size probes)."""

    def build(
        self, name: str, weights: str | None, num_classes: int, image_size: int, small_input: bool
    ) -> Net:
        """The network at `image_size` with its weights loaded and `num_classes`-way heads."""

    def imagenet_top1(self, name: str, weights: str) -> float | None:
        """The ImageNet-1K top-1 accuracy (a fraction) these weights are published with; None
        where the source does not say (a ranking baseline: report.ranking_measures)."""

    def own_net(self, name: str, weights: str) -> nn.Module | None:
        """The network with these weights and its own (ImageNet) head, for LEEP/NCE; None where
        the source's head is not read."""
