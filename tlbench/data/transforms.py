"""Image transforms from a preprocessing recipe and an augmentation preset.

Inputs are uint8 CHW tensors (any channel count); outputs normalised float RGB tensors.
"""

from __future__ import annotations

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2 as T

from tlbench.errors import one_of
from tlbench.preprocess import Preprocess

AUGMENTS = ("none", "classic", "strong")


class ToRGB(torch.nn.Module):
    """Grayscale -> 3 identical channels; RGBA -> RGB. Pretrained backbones want 3 channels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-3] == 1:
            return x.expand(*x.shape[:-3], 3, *x.shape[-2:])
        return x[..., :3, :, :] if x.shape[-3] > 3 else x


def build(pre: Preprocess, augment: str, train: bool) -> T.Compose:
    if augment not in AUGMENTS:
        raise one_of("data.augment", augment, AUGMENTS, what="augmentation preset")
    interp = InterpolationMode(pre.interpolation)
    if not train or augment == "none":
        geometry = [
            T.Resize(pre.resize_size, interpolation=interp, antialias=True),
            T.CenterCrop(pre.crop_size),
        ]
    elif augment == "classic":  # as in the CIFAR-10 transfer tutorial
        geometry = [
            T.RandomResizedCrop(
                pre.crop_size, scale=(0.5, 1.0), interpolation=interp, antialias=True
            ),
            T.RandomHorizontalFlip(),
        ]
    else:  # strong
        geometry = [
            T.RandomResizedCrop(
                pre.crop_size, scale=(0.25, 1.0), interpolation=interp, antialias=True
            ),
            T.RandomHorizontalFlip(),
            ToRGB(),
            T.TrivialAugmentWide(interpolation=interp),
        ]
    tail = [ToRGB(), T.ToDtype(torch.float32, scale=True), T.Normalize(pre.mean, pre.std)]
    if train and augment == "strong":
        tail.append(T.RandomErasing(p=0.25))
    return T.Compose([*geometry, *tail])


def is_random(augment: str) -> bool:
    """Whether training inputs differ from epoch to epoch (matters for feature caching)."""
    return augment != "none"
