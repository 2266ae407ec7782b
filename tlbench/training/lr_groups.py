"""The optimizer's named parameter groups: each group's learning-rate multiplier (head_lr_mult,
backbone_lr_mult, lr_mult, layer_decay), the epoch at which it starts training, and its LR
warm-up from that epoch (warmup_epochs). Which parameters train when is tlbench.training.strategies'
plan; the strategy keys, and why warm-up exists, are documented there.
"""

from __future__ import annotations

from torch import nn

from tlbench.models.stages import stages as family_stages
from tlbench.training.strategies import milestones, plan, select


def param_groups(net: nn.Module, head_names: list[str], cfg) -> dict[str, tuple[list[str], float]]:
    """Named optimizer groups over every parameter that trains at any point: name -> (params, LR mult).

    Order of precedence: head -> head_lr_mult; an `lr_mult` pattern -> its multiplier (first
    matching pattern wins); with `layer_decay`, stage i of n -> backbone_lr_mult * decay**(n-1-i);
    otherwise -> backbone_lr_mult.
    """
    union = plan(net, head_names, cfg, epoch=None).trainable
    head_params = set(select(net, head_names, ["head"]))
    backbone_mult = float(cfg.get("backbone_lr_mult", 1.0))
    pattern_hits = [
        (p, float(m), set(select(net, head_names, [p], key=f"strategy.lr_mult.{p}")))
        for p, m in (cfg.get("lr_mult") or {}).items()
        if float(m) != 0.0
    ]
    stage_of: dict[str, int] = {}
    decay = cfg.get("layer_decay")
    st = family_stages(net, head_names) if decay else []
    for i, stage in enumerate(st):
        stage_of.update(dict.fromkeys(stage, i))

    groups: dict[str, tuple[list[str], float]] = {}
    for name in union:
        if name in head_params:
            key, mult = "head", float(cfg.get("head_lr_mult", 1.0))
        elif hit := next(((p, m) for p, m, hits in pattern_hits if name in hits), None):
            key, mult = f"lr_mult:{hit[0]}", hit[1]
        elif name in stage_of:
            i = stage_of[name]
            key, mult = f"stage{i}", backbone_mult * float(decay) ** (len(st) - 1 - i)
        else:
            key, mult = "backbone", backbone_mult
        groups.setdefault(key, ([], mult))[0].append(name)
    return groups


def optimizer_groups(
    net: nn.Module, head_names: list[str], cfg, base_lr: float, l2sp: bool
) -> list[dict]:
    """The optimizer's groups (`param_groups` with tensors and LRs): named groups over every
    parameter that trains at any epoch, each with its own LR. Frozen-for-now parameters have no
    gradient, so the optimizer leaves them alone."""
    params = dict(net.named_parameters())
    groups = param_groups(net, head_names, cfg)
    out = [
        {"name": g, "params": [params[n] for n in names], "lr": base_lr * mult}
        for g, (names, mult) in groups.items()
    ]
    if l2sp:  # L2-SP replaces weight decay (Li et al., 2018)
        for group in out:
            group["weight_decay"] = 0.0
    return out


def check_patterns(model_cfg, strategy_cfg, image_size: int | None) -> None:
    """Every name and pattern of the strategy (trainable, last_n_stages, schedule, lr_mult,
    layer_decay) against the network, built on the meta device (no memory, no weights: fast)
    so a pattern that matches nothing is refused before any data is read. A network that cannot
    be built on the meta device (a few initialisers read values) is checked when it is built."""
    import torch

    from tlbench.models import registry

    try:
        with torch.device("meta"):
            built = registry.build(
                model_cfg, num_classes=2, pretrained=False, image_size=image_size
            )
    except (NotImplementedError, RuntimeError):
        return
    param_groups(built.net, built.head_names, strategy_cfg)


def group_starts(
    net: nn.Module, head_names: list[str], cfg, groups: dict[str, tuple[list[str], float]]
) -> dict[str, int]:
    """Group name -> the first epoch at which any of its parameters trains."""
    starts: dict[str, int] = {}
    for epoch in [0, *milestones(cfg)]:
        now = set(plan(net, head_names, cfg, epoch=epoch).trainable)
        for name, (params, _) in groups.items():
            if name not in starts and now.intersection(params):
                starts[name] = epoch
    return starts


def warmup_factor(start: int, epoch: int, batch: int, batches: int, warmup_epochs: float) -> float:
    """LR factor of a group that started training at epoch `start`, at step `batch` of `epoch`
    (`batches` steps per epoch): linear from 1/n to 1 over n = warmup_epochs * batches steps.
    A pure function of the position, so a resumed run continues the same ramp."""
    total = round(float(warmup_epochs or 0) * max(int(batches), 1))
    if total <= 0 or epoch < start:
        return 1.0
    step = (epoch - start) * max(int(batches), 1) + batch + 1
    return min(1.0, step / total)


def warm_up(
    groups: list[dict], starts: dict[str, int], epoch: int, batch: int, batches: int, warmup: float
) -> None:
    """Scale, in place, the LR of each non-head group that has a start by its warmup_factor."""
    for g in groups:
        if g.get("name") != "head" and g.get("name") in starts:
            g["lr"] *= warmup_factor(starts[g["name"]], epoch, batch, batches, warmup)
