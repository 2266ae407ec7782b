"""torchvision backbones: names, weights (from the torch hub cache) and their preprocessing."""

from __future__ import annotations

import inspect
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import torch
import torchvision
from torch import nn

from tlbench.errors import TlbenchError, one_of
from tlbench.models import heads
from tlbench.models.sizes import InputSize, probe
from tlbench.models.source import Net, Source
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


def _quiet_get_model(name: str, weights=None, **kwargs) -> nn.Module:
    with (
        warnings.catch_warnings()
    ):  # googlenet/inception warn about a future init change we don't rely on
        warnings.filterwarnings(
            "ignore", message="The default weight initialization", category=FutureWarning
        )
        return torchvision.models.get_model(name, weights=weights, **kwargs)


def build(name: str, weights, image_size: int | None = None) -> nn.Module:
    """The torchvision model with its original 1000-class head; `weights` may be None.

    `image_size` builds random-init models whose size is baked in (ViT, MaxViT) for that size.
    """
    if weights is not None:
        ensure_available(name, weights)
    return _quiet_get_model(name, weights, **size_kwargs(name, None if weights else image_size))


# -- input sizes -----------------------------------------------------------------------------
@cache
def size_kwarg(name: str) -> str | None:
    """The constructor argument that fixes the input size, if the family has one.

    Found generically: a network class in the builder's own module whose __init__ takes
    `image_size` (torchvision ViT) or `input_size` (MaxViT). No network is built.
    """
    module = sys.modules[torchvision.models.get_model_builder(name).__module__]
    for obj in vars(module).values():
        if (
            isinstance(obj, type)
            and issubclass(obj, nn.Module)
            and obj.__module__ == module.__name__
        ):
            params = inspect.signature(obj.__init__).parameters
            for kwarg in ("image_size", "input_size"):
                if kwarg in params:
                    return kwarg
    return None


def size_kwargs(name: str, image_size: int | None) -> dict:
    kwarg = size_kwarg(name)
    if kwarg is None or image_size is None:
        return {}
    # MaxViT takes (height, width); ViT a single side.
    return {kwarg: (image_size, image_size) if kwarg == "input_size" else image_size}


def input_size(name: str, weights) -> InputSize:
    """Size rule of `name` with `weights` (a WeightsEnum member) or random init (None)."""
    kwarg = size_kwarg(name)
    meta_of = weights if weights is not None else default_weights(name)
    min_size = int(meta_of.meta.get("min_size", (1, 1))[0]) if meta_of is not None else 1
    if kwarg is None:
        return InputSize(minimum=min_size)
    # torchvision's ViT/MaxViT builders force the size to the weights' min_size when loading them.
    return InputSize(minimum=1, fixed=min_size if weights is not None else None, size_kwarg=kwarg)


def constructor(name: str, image_size: int | None):
    """A zero-argument random-init builder (for meta-device probes)."""
    return lambda: _quiet_get_model(name, None, **size_kwargs(name, image_size))


def default_weights(name: str):
    try:
        return torchvision.models.get_model_weights(name).DEFAULT
    except (ValueError, AttributeError):
        return None


# -- auxiliary heads ------------------------------------------------------------------------
def drop_aux_heads_if_too_small(name: str, net: nn.Module, size: int | None) -> list[str]:
    """inception_v3's auxiliary head needs ~299 px in training (its 5x5 conv runs on a 17x17 map);
    googlenet's adapts to any size. When a train-mode pass at `size` would fail, drop the aux heads
    (the model's own `aux_logits=False` path) instead of crashing mid-epoch. Returns notes."""
    if size is None or not getattr(net, "aux_logits", False):
        return []
    if probe(constructor(name, None), size, train=True) is None:
        return []
    aux = [n for n, _ in net.named_children() if "aux" in n.lower()]
    net.aux_logits = False
    for n in aux:
        setattr(net, n, None)
    return [f"{name}: auxiliary heads {aux} dropped (they need larger inputs than {size} px)"]


# -- small inputs ---------------------------------------------------------------------------
def supports_small_input(name: str) -> bool:
    """ResNet-style stems: torchvision resnet*, resnext*, wide_resnet* (all in models.resnet)."""
    return (
        torchvision.models.get_model_builder(name).__module__ == torchvision.models.resnet.__name__
    )


def adapt_small_input(net: nn.Module) -> None:
    """CIFAR-style stem (He et al. 2016, sec. 4.2): 3x3 stride-1 conv1, no max-pool, so a 32 px
    image reaches layer1 at 32x32 instead of 8x8. conv1 is re-initialised (new shape)."""
    old = net.conv1
    net.conv1 = nn.Conv2d(old.in_channels, old.out_channels, 3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    net.maxpool = nn.Identity()


# -- listing --------------------------------------------------------------------------------
def num_params(name: str) -> int | None:
    """Parameter count from the weights' metadata (ImageNet head), without building anything."""
    w = default_weights(name)
    return w.meta.get("num_params") if w is not None else None


def imagenet_top1(name: str, weights: str) -> float | None:
    """ImageNet-1K top-1 accuracy (a fraction) from the weights' metadata; None where the weights
    are not torchvision's or their metadata has none (a ranking baseline: report.ranking_measures)."""
    try:
        meta = resolve_weights(name, weights).meta
    except (TlbenchError, ValueError, KeyError):
        return None
    acc = meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1")
    return None if acc is None else float(acc) / 100


def offline_weights(name: str) -> list[str]:
    """Names of the weights of `name` whose files sit in the torch hub cache right now."""
    try:
        enum = torchvision.models.get_model_weights(name)
    except (ValueError, AttributeError):
        return []
    return [w.name for w in enum if cache_file(w).is_file()]


@dataclass(frozen=True)
class TorchvisionSource(Source):
    """Every torchvision classification model; `model=<name>` without a config file lands here,
    so an unknown name lists the other sources' choices (`also`) too."""

    also: tuple[str, ...] = ()
    prefix = ""

    def check(self, name: str, weights: str | None) -> None:
        if name not in names():
            raise one_of("model", name, [*names(), *self.also], what="model name")
        if weights is not None:
            resolve_weights(name, weights)

    def supports_small_input(self, name: str) -> bool:
        return supports_small_input(name)

    def input_size(self, name: str, weights: str | None) -> InputSize:
        return input_size(name, resolve_weights(name, weights) if weights is not None else None)

    def preprocess(self, name: str, weights: str | None) -> Preprocess:
        if weights is None:
            return default_preprocess(name)
        return preprocess_of(resolve_weights(name, weights))

    def constructor(self, name: str, image_size: int | None) -> Callable[[], nn.Module]:
        return constructor(name, image_size)

    def build(
        self, name: str, weights: str | None, num_classes: int, image_size: int, small_input: bool
    ) -> Net:
        w = resolve_weights(name, weights) if weights is not None else None
        net = build(name, w, image_size=image_size)
        notes = []
        if small_input:
            adapt_small_input(net)
            if w is not None:
                notes.append("small_input: conv1 re-initialised (3x3 stride 1), maxpool removed")
        notes += drop_aux_heads_if_too_small(name, net, image_size)
        origin = f"torchvision:{w.name}" if w is not None else "random"
        return Net(net, heads.new_heads(net, num_classes), origin, notes)

    def imagenet_top1(self, name: str, weights: str) -> float | None:
        return imagenet_top1(name, weights)

    def own_net(self, name: str, weights: str) -> nn.Module:
        return build(name, resolve_weights(name, weights))
