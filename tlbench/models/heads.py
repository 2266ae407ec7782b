"""Find every classifier head of a model, wherever it lives, and replace it for N classes.

Rule (no per-family table to go stale): a head is a leaf `nn.Linear` or `nn.Conv2d` whose output
size is the model's original number of classes (1000 for ImageNet models). That finds `fc`,
`classifier[-1]`, `heads.head`, squeezenet's final 1x1 conv and the auxiliary heads of
inception_v3/googlenet alike. The main head is the last one that is not auxiliary. A test runs
this over every model torchvision lists.
"""

from __future__ import annotations

import contextlib

from torch import nn

from tlbench.errors import TlbenchError


def _out_size(m: nn.Module) -> int | None:
    if isinstance(m, nn.Linear):
        return m.out_features
    if isinstance(m, nn.Conv2d):
        return m.out_channels
    return None


def find_heads(net: nn.Module, original_classes: int) -> list[str]:
    """Module names of the heads, main head first, then auxiliary heads."""
    found = [name for name, m in net.named_modules() if _out_size(m) == original_classes]
    if not found:
        raise TlbenchError(
            f"could not find a classifier head (a Linear or Conv2d layer with {original_classes} "
            f"outputs) in {type(net).__name__}",
            fix="use a classification model, or register a builder that names its head",
        )
    aux = [n for n in found if "aux" in n.lower()]
    main = [n for n in found if n not in aux]
    if not main:
        raise TlbenchError(f"only auxiliary heads found in {type(net).__name__}: {aux}")
    return [main[-1], *aux]


def _new_like(old: nn.Module, num_classes: int) -> nn.Module:
    if isinstance(old, nn.Linear):
        return nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    return nn.Conv2d(
        old.in_channels,
        num_classes,
        old.kernel_size,
        old.stride,
        old.padding,
        bias=old.bias is not None,
    )


def original_classes(net: nn.Module) -> int:
    if isinstance(getattr(net, "num_classes", None), int):
        return net.num_classes
    return 1000  # every torchvision classification builder defaults to ImageNet's 1000 classes


def new_heads(net: nn.Module, num_classes: int, names: list[str] | None = None) -> list[str]:
    """Replace the heads (`names`, or those find_heads finds) for `num_classes`; their names."""
    names = names or find_heads(net, original_classes(net))
    replace_heads(net, names, num_classes)
    return names


def replace_heads(net: nn.Module, head_names: list[str], num_classes: int) -> None:
    """Swap each head for a freshly initialised layer with `num_classes` outputs, in place."""
    for name in head_names:
        parent_name, _, attr = name.rpartition(".")
        parent = net.get_submodule(parent_name) if parent_name else net
        old = getattr(parent, attr)
        new = _new_like(old, num_classes).to(next(old.parameters()).dtype)
        setattr(parent, attr, new)
    # Models that store the class count (e.g. timm's) keep it truthful for later code.
    if hasattr(net, "num_classes"):
        with contextlib.suppress(AttributeError):
            net.num_classes = num_classes
