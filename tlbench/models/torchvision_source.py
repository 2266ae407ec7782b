"""torchvision backbones: names, weights (from the torch hub cache) and their preprocessing."""

from __future__ import annotations

import os
import warnings
from functools import lru_cache
from pathlib import Path

import torch
import torchvision
from torch import nn

from tlbench.errors import TlbenchError, one_of
from tlbench.preprocess import Preprocess


@lru_cache(maxsize=1)
def names() -> tuple[str, ...]:
    """Every classification model torchvision lists (detection/video/quantized live elsewhere)."""
    return tuple(torchvision.models.list_models(module=torchvision.models))


def resolve_weights(name: str, weights: str):
    """'DEFAULT', 'IMAGENET1K_V1' or 'ResNet18_Weights.IMAGENET1K_V1' -> a WeightsEnum member."""
    enum = torchvision.models.get_model_weights(name)
    short = str(weights).split(".")[-1]
    members = list(enum.__members__)
    if short not in members:
        raise one_of(
            "model.weights",
            str(weights),
            members + ["null", "<path to .pth/.ckpt/run dir>"],
            what=f"weights for {name}",
        )
    return enum[short]


def preprocess_of(weights) -> Preprocess:
    """Read resize/crop/mean/std/interpolation off the weights' own eval transform."""
    t = weights.transforms()
    crop = t.crop_size[0] if isinstance(t.crop_size, (list, tuple)) else t.crop_size
    resize = t.resize_size[0] if isinstance(t.resize_size, (list, tuple)) else t.resize_size
    return Preprocess(
        crop_size=int(crop),
        resize_size=int(resize),
        mean=tuple(t.mean),
        std=tuple(t.std),
        interpolation=t.interpolation.value,
    )


def default_preprocess(name: str) -> Preprocess:
    """Preprocessing of the model's DEFAULT weights (what random-init runs also use by default)."""
    try:
        return preprocess_of(torchvision.models.get_model_weights(name).DEFAULT)
    except (ValueError, AttributeError):
        return Preprocess()


def cache_file(weights) -> Path:
    """Where torch.hub keeps (and looks for) this weights file: $TORCH_HOME/hub/checkpoints/."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def ensure_available(name: str, weights) -> Path:
    """Make sure the weights file is in the hub cache, downloading it when there is a network.

    Fails *before* any training with a message naming the file, where to put it, and what runs
    offline instead.
    """
    path = cache_file(weights)
    if path.is_file():
        return path
    try:
        torch.hub.load_state_dict_from_url(
            weights.url, progress=True, check_hash=True, weights_only=True
        )
    except Exception as exc:  # URLError, socket errors, hash mismatch: all mean "not usable here"
        raise TlbenchError(
            f"the pretrained weights {weights} for {name} are not in the torch hub cache and could "
            f"not be downloaded ({type(exc).__name__}: {exc}). The file must be {path}",
            key="model.weights",
            value=weights.name if hasattr(weights, "name") else str(weights),
            fix=(
                f'on a connected machine run `python -c "import torchvision; '
                f"torchvision.models.get_model('{name}', weights='{weights.name}')\"` and copy "
                f"{os.path.basename(weights.url)} into {path.parent} (or point TORCH_HOME at a "
                f"folder holding hub/checkpoints/); or run offline with strategy=scratch "
                f"(random init) or model=efficientnet_lite0 (ImageNet weights shipped as a package)"
            ),
        ) from exc
    return path


def build(name: str, weights) -> nn.Module:
    """The torchvision model with its original 1000-class head; `weights` may be None."""
    if weights is not None:
        ensure_available(name, weights)
    with (
        warnings.catch_warnings()
    ):  # googlenet/inception warn about a future init change we don't rely on
        warnings.filterwarnings(
            "ignore", message="The default weight initialization", category=FutureWarning
        )
        return torchvision.models.get_model(name, weights=weights)
