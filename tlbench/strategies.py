"""Transfer-learning strategies: which parameters train, how frozen layers behave, LR groups.

`strategy=` is the transfer-learning strategy (transfer / finetune / scratch ...), not Lightning's
`trainer.strategy` (ddp, ...).

The trainable set is a list of aliases and patterns over module or parameter names:
  head   the classifier head(s) the registry replaced (main + auxiliary)
  all    every parameter
  <glob> fnmatch over module and parameter names, e.g. `layer4`, `features.2[4-9]*`
A pattern that matches nothing is an error listing the nearest names.

Frozen BatchNorm is truly frozen: a norm layer none of whose parameters train is kept in eval mode
(running statistics untouched) however often Lightning calls `.train()`; `train_bn=true` opts out.
When only the head trains, the whole backbone is a fixed feature extractor: eval mode (dropout off,
statistics fixed), so its output for an image never changes.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from torch import nn
from torch.nn.modules.batchnorm import _NormBase

from tlbench.errors import TlbenchError, nearest


@dataclass
class Plan:
    trainable: list[str]  # parameter names that train
    eval_modules: list[str] = field(default_factory=list)  # modules pinned to eval mode
    head_only: bool = False  # everything below the head(s) is frozen and deterministic
    groups: dict[str, list[str]] = field(default_factory=dict)  # optimizer group -> param names
    lr_mults: dict[str, float] = field(default_factory=dict)  # optimizer group -> LR multiplier

    def counts(self, net: nn.Module) -> tuple[int, int]:
        params = dict(net.named_parameters())
        trainable = sum(params[n].numel() for n in self.trainable)
        return trainable, sum(p.numel() for p in params.values())


def _under(name: str, prefix: str) -> bool:
    return prefix == "" or name == prefix or name.startswith(prefix + ".")


def select(
    net: nn.Module, head_names: list[str], patterns: list[str], key: str = "strategy.trainable"
) -> list[str]:
    """Parameter names selected by aliases/globs, in the model's own order."""
    params = [n for n, _ in net.named_parameters()]
    modules = [n for n, _ in net.named_modules() if n]
    chosen: set[str] = set()
    for pattern in patterns:
        pattern = str(pattern)
        if pattern == "all":
            hits = set(params)
        elif pattern == "head":
            hits = {p for p in params if any(_under(p, h) for h in head_names)}
        else:
            hit_modules = [m for m in modules if fnmatch.fnmatchcase(m, pattern)]
            hits = {
                p
                for p in params
                if fnmatch.fnmatchcase(p, pattern) or any(_under(p, m) for m in hit_modules)
            }
        if not hits:
            raise TlbenchError(
                "the pattern matches no module or parameter of this model",
                key=key,
                value=pattern,
                allowed="'head', 'all', or a glob over module/parameter names such as "
                + ", ".join(repr(n) for n in nearest(pattern, modules, n=6)),
                fix="pick names from `python -m tlbench.models <model> --layers` or the nearest names above",
            )
        chosen |= hits
    return [p for p in params if p in chosen]


def plan(net: nn.Module, head_names: list[str], cfg) -> Plan:
    """Decide what trains and which modules stay in eval mode; does not touch the model."""
    trainable = select(net, head_names, list(cfg.get("trainable", ["all"])))
    train_bn = bool(cfg.get("train_bn", False))
    trainable_set = set(trainable)
    if train_bn:
        for mname, m in net.named_modules():
            if isinstance(m, _NormBase):
                trainable_set |= {f"{mname}.{p}" for p, _ in m.named_parameters()}
        trainable = [p for p, _ in net.named_parameters() if p in trainable_set]

    head_params = set(select(net, head_names, ["head"]))
    head_only = trainable_set <= head_params
    if head_only:
        eval_modules = _outside_heads(net, head_names)
    else:
        eval_modules = [] if train_bn else _frozen_norms(net, trainable_set)

    groups = {
        "head": [p for p in trainable if p in head_params],
        "backbone": [p for p in trainable if p not in head_params],
    }
    groups = {g: ps for g, ps in groups.items() if ps}
    mults = {
        "head": float(cfg.get("head_lr_mult", 1.0)),
        "backbone": float(cfg.get("backbone_lr_mult", 1.0)),
    }
    return Plan(trainable, eval_modules, head_only, groups, {g: mults[g] for g in groups})


def _outside_heads(net: nn.Module, head_names: list[str], prefix: str = "") -> list[str]:
    """The largest modules that contain no head (e.g. VGG: features, avgpool, classifier.0-5)."""
    out = []
    for child, module in net.named_children():
        name = f"{prefix}{child}"
        if any(_under(h, name) for h in head_names):
            if name not in head_names:
                out += _outside_heads(module, head_names, prefix=name + ".")
        else:
            out.append(name)
    return out


def _frozen_norms(net: nn.Module, trainable: set[str]) -> list[str]:
    """Norm layers with running statistics none of whose parameters train."""
    out = []
    for name, m in net.named_modules():
        if not isinstance(m, _NormBase):
            continue
        own = [f"{name}.{p}" for p, _ in m.named_parameters()]
        if not any(p in trainable for p in own):
            out.append(name)
    return out


def apply(net: nn.Module, p: Plan) -> None:
    """Set requires_grad from the plan and put pinned modules in eval mode."""
    chosen = set(p.trainable)
    for name, param in net.named_parameters():
        param.requires_grad_(name in chosen)
    pin_eval(net, p)


def pin_eval(net: nn.Module, p: Plan) -> None:
    """Call after every `.train()`: frozen parts stay in inference mode."""
    for name in p.eval_modules:
        net.get_submodule(name).eval()
