"""Transfer-learning strategies: which parameters train (and when) and how frozen layers behave;
tlbench.training.lr_groups builds the optimizer's groups, LR multipliers and warm-up from the plan.

`strategy=` (conf/strategy/*.yaml, keys declared in tlbench.config.schema) is not Lightning's
`trainer.strategy`. The trainable set is a pure function of the epoch. Frozen BatchNorm is truly
frozen: a norm layer none of whose parameters train stays in eval mode.
Why: docs/architecture.md, "Strategies".
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field

from torch import nn
from torch.nn.modules.batchnorm import _NormBase

from tlbench.config import keys, schema
from tlbench.errors import TlbenchError, nearest
from tlbench.models.stages import stages as family_stages

KEYS = schema.keys(schema.StrategyConfig)  # declared once: tlbench/config/schema.py


@dataclass
class Plan:
    trainable: list[str]  # parameter names that train now
    eval_modules: list[str] = field(default_factory=list)  # modules pinned to eval mode now
    head_only: bool = False  # everything below the head(s) is frozen and deterministic

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
        elif pattern.startswith("stage:"):
            hits = _stage(net, head_names, pattern, key)
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


def _stage(net: nn.Module, head_names: list[str], pattern: str, key: str) -> set[str]:
    """`stage:<i>`: the parameters of stage i of the family (tlbench.models.stages)."""
    st = family_stages(net, head_names)
    index = pattern[len("stage:") :]
    if not index.isdigit() or int(index) >= len(st):
        raise TlbenchError(
            f"this model has {len(st)} stages",
            key=key,
            value=pattern,
            allowed=f"stage:0 .. stage:{len(st) - 1} (0 = input side)",
            fix="list them with `python -m tlbench.models <model> --stages`; for "
            f"experiment=surgical sweep strategy=transfer,finetune,surgical_0,...,surgical_{len(st) - 1}",
        )
    return set(st[int(index)])


def _last_stages(net: nn.Module, head_names: list[str], k, key: str) -> set[str]:
    if not k:
        return set()
    st = family_stages(net, head_names)
    if not isinstance(k, int) or k < 0 or k > len(st):
        raise TlbenchError(
            f"this model has {len(st)} stages",
            key=key,
            value=k,
            allowed=f"0..{len(st)}",
            fix=f"use at most {len(st)} (or trainable=[all])",
        )
    return {p for stage in st[len(st) - k :] for p in stage}


def _phases(cfg) -> list[dict]:
    schedule = list(cfg.get("schedule") or [])
    for i, entry in enumerate(schedule):
        mapping = isinstance(entry, Mapping)  # `strategy.schedule=[3]` in a config built by hand
        epoch = entry.get("epoch") if mapping else None
        if not mapping or isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise TlbenchError(
                "each schedule entry is a mapping with a non-negative integer `epoch`",
                key=f"strategy.schedule[{i}]" + (".epoch" if mapping else ""),
                value=epoch if mapping else entry,
                fix="e.g. strategy.schedule='[{epoch: 3, trainable: [all]}]'",
            )
    return sorted(schedule, key=lambda e: e["epoch"])


def milestones(cfg) -> list[int]:
    """Epochs at which the trainable set changes."""
    return [e["epoch"] for e in _phases(cfg)]


def _frozen_by_multiplier(net, head_names, cfg) -> set[str]:
    out: set[str] = set()
    for pattern, mult in (cfg.get("lr_mult") or {}).items():
        if float(mult) == 0.0:
            out |= set(select(net, head_names, [pattern], key=f"strategy.lr_mult.{pattern}"))
    return out


def plan(
    net: nn.Module, head_names: list[str], cfg, epoch: int | None = 0, pretrained: bool = True
) -> Plan:
    """What trains at `epoch` (None = the union over the whole schedule) and what stays in eval.
    `pretrained`: the network holds pretrained weights (then `bn_mode: frozen` keeps its BN
    statistics)."""
    keys.check_strategy_keys(cfg)
    patterns = list(cfg.get("trainable", ["all"]))
    k = cfg.get("last_n_stages") or 0
    chosen = set(select(net, head_names, patterns)) | _last_stages(
        net, head_names, k, "strategy.last_n_stages"
    )
    for i, entry in enumerate(_phases(cfg)):
        if epoch is None or entry["epoch"] <= epoch:
            chosen |= set(
                select(
                    net,
                    head_names,
                    list(entry.get("trainable") or []),
                    key=f"strategy.schedule[{i}].trainable",
                )
            )
            chosen |= _last_stages(
                net, head_names, entry.get("last_n_stages"), f"strategy.schedule[{i}].last_n_stages"
            )
    chosen -= _frozen_by_multiplier(net, head_names, cfg)
    train_bn = bool(cfg.get("train_bn", False))
    if train_bn:
        for mname, m in net.named_modules():
            if isinstance(m, _NormBase):
                chosen |= {f"{mname}.{p}" for p, _ in m.named_parameters()}
    trainable = [p for p, _ in net.named_parameters() if p in chosen]

    head_params = set(select(net, head_names, ["head"]))
    head_only = chosen <= head_params
    if head_only:
        eval_modules = _outside_heads(net, head_names)
    elif pretrained and not train_bn and cfg.get("bn_mode", "frozen") == "frozen":
        eval_modules = _stat_norms(net)
    else:
        eval_modules = [] if train_bn else _frozen_norms(net, chosen)
    return Plan(trainable, eval_modules, head_only)


def phase_counts(net: nn.Module, head_names: list[str], cfg) -> list[dict]:
    """[{epoch, trainable}] for the first epoch and every schedule milestone: what trained when."""
    out = []
    for epoch in [0, *milestones(cfg)]:
        count = plan(net, head_names, cfg, epoch=epoch).counts(net)[0]
        if not out or out[-1]["trainable"] != count:
            out.append({"epoch": epoch, "trainable": count})
    return out


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


def _stat_norms(net: nn.Module) -> list[str]:
    """Every norm layer that keeps running statistics (bn_mode: frozen pins them all)."""
    return [
        name
        for name, m in net.named_modules()
        if isinstance(m, _NormBase) and m.track_running_stats
    ]


def _frozen_norms(net: nn.Module, trainable: set[str]) -> list[str]:
    """Norm layers with running statistics none of whose parameters train."""
    out = []
    for name, m in net.named_modules():
        if not isinstance(m, _NormBase):
            continue
        own = [f"{name}.{p}" for p, _ in m.named_parameters()]
        if not own:  # affine=False: it follows the layer that contains it
            parent = name.rpartition(".")[0]
            own = [p for p in trainable if _under(p, parent)] or [f"{name}.<none>"]
        if not any(p in trainable for p in own):
            out.append(name)
    return out


def apply(net: nn.Module, p: Plan, synced: frozenset[str] = frozenset()) -> None:
    """Set requires_grad from the plan (and on `synced`: ddp_synced) and pin modules to eval."""
    chosen = set(p.trainable) | synced
    for name, param in net.named_parameters():
        param.requires_grad_(name in chosen)
    pin_eval(net, p)


def pin_eval(net: nn.Module, p: Plan) -> None:
    """Call after every `.train()`: frozen parts stay in inference mode."""
    for name in p.eval_modules:
        net.get_submodule(name).eval()


def ddp_synced(net: nn.Module, head_names: list[str], cfg) -> frozenset[str]:
    """Under DDP, what must require grad from the start: every parameter that trains at any epoch.

    DDP all-reduces only the parameters that require grad when it wraps the model, so a parameter
    a freeze schedule (lp_ft, gradual) unfreezes later would train on each rank's own gradients
    and the ranks would drift apart. So these all require grad from the start, and until their
    phase `drop_waiting_grads` removes their (synced) gradients before the optimizer step: the
    optimizer skips them as it skips a frozen parameter (no momentum, no weight decay), exactly
    as in one process. The alternatives: re-wrapping at each phase, or lr 0 (Lightning #20340's
    workaround, which still builds optimizer state). The price: during a frozen phase the
    backward also runs through the layers still waiting. Without a schedule nothing changes."""
    if not cfg.get("schedule"):
        return frozenset()
    return frozenset(plan(net, head_names, cfg, epoch=None).trainable)


def drop_waiting_grads(net: nn.Module, p: Plan, synced: frozenset[str]) -> None:
    """Before each optimizer step: the gradients of `synced` parameters not trainable yet."""
    if not synced:
        return
    trainable = set(p.trainable)
    for name, param in net.named_parameters():
        if name in synced and name not in trainable:
            param.grad = None
