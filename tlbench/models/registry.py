"""The backbone registry: a model config (name, source, weights) -> a network with new heads.

SOURCES maps `model.source` to its `Source` (tlbench.models.source): torchvision, timm
(`model=timm/<name>`), tlbench's own builders; `model.weights=<run dir | .ckpt | .pth>` wraps the
architecture's source (checkpoint_source.FromCheckpoint). Every source returns the preprocessing
its weights expect and the input size they accept, checked against `data.image_size`.
Why: docs/architecture.md, "Models".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from tlbench.errors import TlbenchError, one_of
from tlbench.models import sizes
from tlbench.models.builtin_source import BUILTIN, BuiltinSource
from tlbench.models.checkpoint_source import FromCheckpoint
from tlbench.models.sizes import InputSize
from tlbench.models.source import Source
from tlbench.models.timm_source import TimmSource
from tlbench.models.torchvision_source import TorchvisionSource
from tlbench.preprocess import Preprocess

# `model=<name>` without a config file is a torchvision name: its unknown-name error lists all.
SOURCES: dict[str, Source] = {
    "torchvision": TorchvisionSource(also=(*BUILTIN, "timm/<name>")),
    "timm": TimmSource(),
    "tlbench": BuiltinSource(),
}


@dataclass
class BuiltModel:
    net: nn.Module
    head_names: list[str]  # main head first, then auxiliary heads
    preprocess: Preprocess  # what the weights expect (or the family default for random init)
    weights: str  # human-readable origin of the weights: "random", "torchvision:IMAGENET1K_V1", ...
    notes: list[str] = field(default_factory=list)
    fixed_input_size: int | None = None  # the only input side the built network accepts
    min_input_size: int = 1  # the smallest input side it accepts


def _is_path(weights) -> bool:
    return weights is not None and (
        "/" in str(weights) or str(weights).endswith((".pth", ".pt", ".ckpt", ".safetensors"))
    )


def _fields(model_cfg) -> tuple[str, str, object]:
    return model_cfg["name"], model_cfg.get("source", "torchvision"), model_cfg.get("weights")


def _lookup(source: str) -> Source:
    if source not in SOURCES:
        raise one_of("model.source", source, SOURCES, what="model source")
    return SOURCES[source]


def _resolve(model_cfg, pretrained: bool) -> tuple[Source, str, str | None]:
    """The source that builds this config, the name, and the source's own weights that load
    (None = random init, or a checkpoint file: then the source is wrapped in FromCheckpoint)."""
    name, source, weights = _fields(model_cfg)
    found = _lookup(source)
    if pretrained and _is_path(weights):
        return FromCheckpoint(found, str(weights)), name, None
    return found, name, (str(weights) if pretrained and weights is not None else None)


def validate(
    model_cfg, image_size: int | None = None, pretrained: bool | None = None
) -> Preprocess | None:
    """Check name/source/weights (and, given `image_size`, the input size) without building.

    `pretrained=None` means "as the config says": pretrained iff model.weights is set. Given
    `image_size`, returns the preprocessing `describe` found, so a run describes its model once.
    """
    name, source, weights = _fields(model_cfg)
    found = _lookup(source)
    found.check(name, None if weights is None or _is_path(weights) else str(weights))
    if model_cfg.get("small_input") and not found.supports_small_input(name):
        raise TlbenchError(
            f"small_input adapts ResNet-style stems; {source} model {name} has none",
            key="model.small_input",
            value=True,
            allowed="true only for torchvision resnet*, resnext*, wide_resnet*",
            fix="model.small_input=false, or a model made for 32 px inputs: model=mini_vgg, "
            "model=lenet5, or model=resnet18 model.small_input=true",
        )
    if _is_path(weights) and not Path(weights).exists():
        raise TlbenchError(
            "the weights file or run directory does not exist",
            key="model.weights",
            value=str(weights),
            fix="give an existing .pth/.ckpt file or a tlbench run directory",
        )
    if image_size is not None:
        return describe(
            model_cfg, weights is not None if pretrained is None else pretrained, image_size
        )
    return None


def input_size(model_cfg, pretrained: bool) -> InputSize:
    """The input sizes the network accepts, for the weights that will actually load."""
    source, name, weights = _resolve(model_cfg, pretrained)
    return source.input_size(name, weights)


def describe(model_cfg, pretrained: bool, image_size: int | None = None) -> Preprocess:
    """The preprocessing the data pipeline should use for this model, without building it.

    `image_size` is the data's requested input side (`data.image_size`, None = the model's own):
    a size the network cannot take is a TlbenchError naming data.image_size; a network whose size
    is fixed (pretrained ViT/MaxViT) gets its size in the returned crop_size.
    """
    source, name, weights = _resolve(model_cfg, pretrained)
    preprocess = source.preprocess(name, weights)
    rule = source.input_size(name, weights)
    if rule.fixed is not None:
        if image_size is None:
            preprocess = preprocess.at_size(rule.fixed)
        sizes.check(name, rule, image_size or rule.fixed, from_data=image_size is not None)
        return preprocess
    size = image_size or preprocess.crop_size
    sizes.check(name, rule, size, from_data=image_size is not None)
    if rule.size_kwarg is not None:  # random-init ViT & co are built for `size`: must divide
        sizes.check_constructible(name, source.constructor(name, size), size)
    return preprocess


def build(
    model_cfg,
    num_classes: int,
    pretrained: bool,
    image_size: int | None = None,
    preprocess: Preprocess | None = None,
) -> BuiltModel:
    """Build the network, load pretrained weights if asked, and replace its head(s).

    `image_size` is the input side the data will have (the datamodule's crop size); random-init
    networks whose size is baked in are built for it, and auxiliary heads that cannot take it are
    dropped. None = the model's default size. `preprocess`: what `describe` already returned for
    this config (training passes the datamodule's), so describing (which may read a checkpoint
    file) happens once per run.
    """
    if preprocess is None:
        preprocess = describe(model_cfg, pretrained, image_size)
    source, name, weights = _resolve(model_cfg, pretrained)
    rule = source.input_size(name, weights)
    size = rule.fixed or image_size or preprocess.crop_size
    made = source.build(name, weights, num_classes, size, bool(model_cfg.get("small_input")))
    fixed = rule.fixed or (size if rule.size_kwarg else None)  # baked-in sizes accept only theirs
    return BuiltModel(
        made.net, made.head_names, preprocess, made.weights, made.notes, fixed, rule.minimum
    )


def own_net(model) -> nn.Module | None:
    """The network of a model config with its pretrained weights and its own ImageNet head (for
    LEEP/NCE); None where its source's head is not read."""
    source, name, weights = _resolve(model, pretrained=True)
    return source.own_net(name, weights) if weights is not None else None


def imagenet_top1(model) -> float | None:
    """The published ImageNet top-1 of a model config's pretrained weights; None for random
    init, checkpoints and sources that do not publish it."""
    source, name, weights = _resolve(model, pretrained=True)
    return source.imagenet_top1(name, weights) if weights is not None else None


def spelling(model) -> str:
    """How `model=` names this model config (`timm/<name>` for timm). Never raises: summaries
    are started before validation refuses an unknown source (spelled as the bare name)."""
    name, source, _ = _fields(model)
    return getattr(SOURCES.get(source), "prefix", "") + name
