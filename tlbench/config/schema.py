"""Config schemas declared once, in Python, and registered in Hydra's ConfigStore.

`StrategyConfig` is every key of a transfer-learning strategy (`strategy=`, conf/strategy/*.yaml)
with its default and meaning; each preset starts from it (`- /schema/strategy@_here_`) and writes
only what differs, so a new key is added here and nowhere else. It is stored as a plain mapping,
not a typed structured config. Why: docs/architecture.md, "Configuration".
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

SCHEMA_GROUP = "schema"  # ConfigStore group of the schemas: `/schema/strategy` in a defaults list


@dataclass
class StrategyConfig:
    # `strategy=` is the transfer-learning strategy, not Lightning's `trainer.strategy` (ddp, ...).
    # One comment per field: what it means (the presets' files say why they differ).

    # reported in summary.json (each preset names itself)
    name: str = "???"
    # start from model.weights (false = random init)
    pretrained: bool = True
    # aliases (head, all) and globs over module/parameter names
    trainable: list[str] = field(default_factory=lambda: ["head"])
    # true = BatchNorm layers train (affine + running stats) even where frozen
    train_bn: bool = False
    # LR multiplier of the new head
    head_lr_mult: float = 1
    # LR multiplier of the non-head parameters that train
    backbone_lr_mult: float = 0.1
    # also train the last k stages of the family (tlbench/models/stages.py)
    last_n_stages: int = 0
    # {pattern: multiplier of the base LR}; 0 freezes the matched parameters
    lr_mult: dict[str, float] | None = None
    # layer-wise LR decay per stage (e.g. 0.7); null = off
    layer_decay: float | None = None
    # [{epoch: e, trainable: [...], last_n_stages: k}]: from epoch e on these train too
    schedule: list[dict[str, Any]] = field(default_factory=list)
    # L2-SP: {alpha, beta}: alpha pulls the backbone to its pretrained weights, beta decays the head
    l2sp: dict[str, float] | None = None
    # transfer only: compute frozen features once (auto = when safe)
    cache_features: bool | Literal["auto"] = "auto"
    # BatchNorm statistics of a pretrained network while it fine-tunes: frozen = keep the
    # pretrained ones (eval mode), train = re-estimate them from the batches (tlbench/training/strategies.py)
    bn_mode: Literal["frozen", "train"] = "frozen"
    # non-head LRs ramp linearly from 0 over this many epochs from the epoch they start training
    warmup_epochs: float = 1.0


def keys(schema: type) -> frozenset[str]:
    """The field names of a schema dataclass."""
    return frozenset(f.name for f in dataclasses.fields(schema))


def types(schema: type) -> dict[str, object]:
    """Field name -> its annotation (resolved), for the type checks of config validation."""
    return typing.get_type_hints(schema)


def register() -> None:
    """Put the schemas into Hydra's ConfigStore (idempotent; called by tlbench.config.register)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(
        group=SCHEMA_GROUP, name="strategy", node=dataclasses.asdict(StrategyConfig())
    )
