"""What a "stage" is, per model family, defined once.

A stage is an ordered group of parameters, input side first: the unit of `last_n_stages`,
gradual unfreezing and layer-wise LR decay. Heads are never part of a stage (they always train).
timm models bring their own `group_matcher`, torchvision families follow their papers, anything
else uses its top-level children that hold parameters. Why: docs/architecture.md, "Models".
"""

from __future__ import annotations

import os

from torch import nn


def _params_under(net: nn.Module, prefixes: list[str]) -> list[str]:
    return [
        n
        for n, _ in net.named_parameters()
        if any(n == p or n.startswith(p + ".") for p in prefixes)
    ]


def _children(net: nn.Module, path: str) -> list[list[str]]:
    container = net.get_submodule(path)
    return [
        [f"{path}.{name}"]
        for name, child in container.named_children()
        if any(True for _ in child.parameters())
    ]


def _pool_blocks(net: nn.Module, path: str) -> list[list[str]]:
    """Split a Sequential of conv layers at its max-pools (VGG/AlexNet blocks)."""
    blocks, current = [], []
    for name, child in net.get_submodule(path).named_children():
        if any(True for _ in child.parameters()):
            current.append(f"{path}.{name}")
        if isinstance(child, nn.MaxPool2d) and current:
            blocks.append(current)
            current = []
    return blocks + ([current] if current else [])


def _torchvision_family(net: nn.Module) -> list[list[str]] | None:
    cls = type(net).__name__
    if cls == "ResNet":
        return [["conv1", "bn1"], ["layer1"], ["layer2"], ["layer3"], ["layer4"]]
    if cls in ("VGG", "AlexNet"):
        return [*_pool_blocks(net, "features"), ["classifier"]]
    if cls == "DenseNet":
        names = [n for n, _ in net.features.named_children()]
        out, current = [], []
        for n in names:
            current.append(f"features.{n}")
            if n.startswith("transition") or n == names[-1]:
                out.append(current)
                current = []
        return out
    if cls in ("EfficientNet", "MobileNetV2", "MobileNetV3", "ConvNeXt", "SwinTransformer"):
        return _children(net, "features")
    if cls == "MNASNet":
        return _children(net, "layers")
    if cls == "SqueezeNet":
        return _children(net, "features")
    if cls == "RegNet":
        return [["stem"], *_children(net, "trunk_output")]
    if cls == "ShuffleNetV2":
        return [["conv1"], ["stage2"], ["stage3"], ["stage4"], ["conv5"]]
    if cls == "VisionTransformer":
        return [
            ["conv_proj", "class_token", "encoder.pos_embedding"],
            *_children(net, "encoder.layers"),
            ["encoder.ln"],
        ]
    if cls == "MaxVit":
        return [["stem"], *_children(net, "blocks")]
    return None


def stages(net: nn.Module, head_names: list[str]) -> list[list[str]]:
    """Parameter names per stage, input side first; heads excluded; empty stages dropped."""

    def is_head(p: str) -> bool:
        return any(p == h or p.startswith(h + ".") for h in head_names)

    if hasattr(net, "group_matcher"):  # timm
        from timm.models import group_parameters  # public since timm 0.9

        groups = list(group_parameters(net, net.group_matcher(coarse=True)).values())
    else:
        family = _torchvision_family(net)
        if family is None:  # auxiliary classifiers (googlenet) are not a stage of the trunk
            family = [
                [name]
                for name, child in net.named_children()
                if any(True for _ in child.parameters()) and "aux" not in name.lower()
            ]
        groups = [_params_under(net, prefixes) for prefixes in family]
    out = [g for g in ([p for p in g if not is_head(p)] for g in groups) if g]
    # Parameters no rule named (pre-head norms/linears, auxiliary-classifier bodies) sit next to the
    # head: they join the last stage, so every non-head parameter belongs to exactly one stage.
    covered = {p for g in out for p in g}
    rest = [n for n, _ in net.named_parameters() if n not in covered and not is_head(n)]
    if rest:
        if out:
            out[-1] = out[-1] + rest
        else:
            out = [rest]
    return out


def stage_names(groups: list[list[str]]) -> list[str]:
    """A readable, unique name per stage: its parameters' common module path ("layer1",
    "features.3"), else its top-level modules joined ("conv1+bn1"; `stage<i>` past three)."""
    names = []
    for i, params in enumerate(groups):
        modules = [p.rsplit(".", 1)[0] for p in params]
        common = os.path.commonprefix([m.split(".") for m in modules])
        tops = {}  # top-level module -> the common path of this stage's modules under it
        for m in modules:
            parts = m.split(".")
            tops[parts[0]] = os.path.commonprefix([tops.get(parts[0], parts), parts])
        joined = "+".join(".".join(c) for c in tops.values())
        name = ".".join(common) or (joined if len(tops) <= 3 else f"stage{i}")
        names.append(name if name not in names else f"{name}#{i}")
    return names
