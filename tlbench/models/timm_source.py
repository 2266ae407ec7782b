"""timm backbones as `model=timm/<name>`: timm's own head reset and `pretrained_cfg` preprocessing.

Pretrained weights come from the Hugging Face hub cache (HF_HOME); offline, a missing file is a
TlbenchError before training starts, not a stack trace from huggingface_hub.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from tlbench.errors import TlbenchError, one_of
from tlbench.models.sizes import InputSize
from tlbench.models.source import Net, Source
from tlbench.preprocess import Preprocess


def _cfg(name: str):
    import timm

    return timm.models.get_pretrained_cfg(name)


def preprocess(name: str) -> Preprocess:
    cfg = _cfg(name)
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


def input_size(name: str, pretrained: bool) -> InputSize:
    """timm marks families whose size is baked in (ViT-like) with `fixed_input_size`; their
    constructors take `img_size`, so random-init builds follow the data's size."""
    cfg = _cfg(name)
    if cfg is None:
        return InputSize()
    minimum = cfg.min_input_size[-1] if cfg.min_input_size else 1
    if cfg.fixed_input_size:
        return InputSize(
            minimum=1, fixed=cfg.input_size[-1] if pretrained else None, size_kwarg="img_size"
        )
    return InputSize(minimum=minimum)


def constructor(name: str, image_size: int | None):
    """A zero-argument random-init builder (for meta-device probes)."""
    import timm

    kwargs = {"img_size": image_size} if input_size(name, False).size_kwarg and image_size else {}
    return lambda: timm.create_model(name, pretrained=False, **kwargs)


def build(name: str, num_classes: int, pretrained: bool, image_size: int | None) -> nn.Module:
    import timm

    kwargs = {}
    if not pretrained and image_size and input_size(name, False).size_kwarg:
        kwargs["img_size"] = image_size
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=num_classes, **kwargs)
    except Exception as exc:
        if not pretrained:
            raise
        raise TlbenchError(
            f"timm could not load pretrained weights for {name} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''})",
            key="model.weights",
            value="DEFAULT",
            fix="on a connected machine let timm download them once (they go to the Hugging Face "
            "cache, HF_HOME, which you can copy to an offline machine); offline use "
            "strategy=scratch, model.weights=null or model=efficientnet_lite0",
        ) from exc


def head_names(net: nn.Module) -> list[str]:
    """timm names the head module per family in `pretrained_cfg['classifier']`."""
    classifier = net.pretrained_cfg.get("classifier", "classifier")
    return list(classifier) if isinstance(classifier, (list, tuple)) else [classifier]


class TimmSource(Source):
    """`model=timm/<name>`: timm builds the N-class head itself, so no head is replaced."""

    prefix = "timm/"

    def check(self, name: str, weights: str | None) -> None:
        import timm

        if not timm.is_model(name):
            raise one_of(
                "model",
                f"timm/{name}",
                [f"timm/{n}" for n in timm.list_models()],
                what="timm model name",
            )

    def supports_small_input(self, name: str) -> bool:
        return False

    def input_size(self, name: str, weights: str | None) -> InputSize:
        return input_size(name, weights is not None)

    def preprocess(self, name: str, weights: str | None) -> Preprocess:
        return preprocess(name)

    def constructor(self, name: str, image_size: int | None) -> Callable[[], nn.Module]:
        return constructor(name, image_size)

    def build(
        self, name: str, weights: str | None, num_classes: int, image_size: int, small_input: bool
    ) -> Net:
        net = build(name, num_classes, weights is not None, image_size)
        return Net(net, head_names(net), f"timm:{name}" if weights is not None else "random")

    def imagenet_top1(self, name: str, weights: str) -> None:
        return None  # timm's pretrained_cfg carries no accuracy (its results CSVs are not shipped)

    def own_net(self, name: str, weights: str) -> None:
        return None  # LEEP/NCE read torchvision's and tlbench's ImageNet heads only
