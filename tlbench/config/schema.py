"""Config schemas declared once, in Python, and registered as typed structured configs in Hydra's
ConfigStore: Hydra refuses a value of the wrong type while it composes, and
tlbench.config.preflight.compose_error words the refusal. Why some fields are `Any`:
docs/architecture.md, "Configuration".
"""

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from omegaconf import MISSING


def exact(tp, default=None):
    """A field OmegaConf 2.3 cannot type as tlbench needs, stored as `Any` and checked against `tp`
    by tlbench.config.keys (a Union, a Literal, a `dict | None` it fails to merge a dict into; a
    switch: OmegaConf would read yes/on/1 as true, and tlbench takes true or false only)."""
    return field(default=default, metadata={"type": tp})


@dataclass
class StrategyConfig:
    # `strategy=` is the transfer-learning strategy, not Lightning's `trainer.strategy` (ddp, ...).
    # One comment per field: what it means (the presets' files say why they differ).

    # reported in summary.json (each preset names itself)
    name: str = MISSING
    # start from model.weights (false = random init)
    pretrained: Any = exact(bool, True)
    # aliases (head, all) and globs over module/parameter names
    trainable: list[str] = field(default_factory=lambda: ["head"])
    # true = BatchNorm layers train (affine + running stats) even where frozen
    train_bn: Any = exact(bool, False)
    # LR multiplier of the new head
    head_lr_mult: float = 1
    # LR multiplier of the non-head parameters that train
    backbone_lr_mult: float = 0.1
    # also train the last k stages of the family (tlbench/models/stages.py)
    last_n_stages: int = 0
    # {pattern: multiplier of the base LR}; 0 freezes the matched parameters
    lr_mult: Any = exact(dict[str, float] | None)
    # layer-wise LR decay per stage (e.g. 0.7); null = off
    layer_decay: float | None = None
    # [{epoch: e, trainable: [...], last_n_stages: k}]: from epoch e on these train too
    schedule: list[dict[str, Any]] = field(default_factory=list)
    # L2-SP: {alpha, beta}: alpha pulls the backbone to its pretrained weights, beta decays the head
    l2sp: Any = exact(dict[str, float] | None)
    # transfer only: compute frozen features once (auto = when safe)
    cache_features: Any = exact(bool | Literal["auto"], "auto")
    # BatchNorm statistics of a pretrained network while it fine-tunes: frozen = keep the
    # pretrained ones (eval mode), train = re-estimate them from the batches (tlbench/training/strategies.py)
    bn_mode: Any = exact(Literal["frozen", "train"], "frozen")
    # non-head LRs ramp linearly from 0 over this many epochs from the epoch they start training
    warmup_epochs: float = 1.0


# The command configs (conf/<command>.yaml start from these): the types only; each key's default
# and meaning are in the YAML file, where `--cfg job` and the docs show them.
@dataclass
class EvaluateConfig:
    ckpt: str = MISSING
    split: str = MISSING
    batch_size: int | None = MISSING
    device: str = MISSING
    precision: str = MISSING
    data: Any = None
    paths: Any = None


@dataclass
class PredictConfig:
    ckpt: str = MISSING
    input: str = MISSING
    output: str | None = MISSING
    overwrite: Any = exact(bool, MISSING)
    top_k: int = MISSING
    batch_size: int = MISSING
    num_workers: Any = exact(int | Literal["auto"], MISSING)
    device: str = MISSING
    precision: str = MISSING
    progress_bar: Any = exact(bool, MISSING)
    paths: Any = None


@dataclass
class ExportConfig:
    ckpt: str = MISSING
    format: str = MISSING
    output: str | None = MISSING
    overwrite: Any = exact(bool, MISSING)
    onnx_exporter: str = MISSING
    opset: int = MISSING
    check: Any = exact(bool, MISSING)
    atol: float = MISSING
    rtol: float = MISSING
    paths: Any = None


SCHEMAS = {
    "strategy": StrategyConfig,
    "evaluate": EvaluateConfig,
    "predict": PredictConfig,
    "export": ExportConfig,
}


def keys(schema: type) -> frozenset[str]:
    """The field names of a schema dataclass."""
    return frozenset(f.name for f in dataclasses.fields(schema))


def types(schema: type) -> dict[str, object]:
    """Field name -> the type its values must have (the `exact` one where OmegaConf has `Any`)."""
    hints = typing.get_type_hints(schema)
    return {f.name: f.metadata.get("type", hints[f.name]) for f in dataclasses.fields(schema)}


def register() -> None:
    """Put the schemas into Hydra's ConfigStore (idempotent; called by tlbench.config.register) as
    `<name>_schema` at its root (`- /strategy_schema@_here_` in a defaults list): in a group they
    would be listed by --help as options to choose."""
    from hydra.core.config_store import ConfigStore

    for name, node in SCHEMAS.items():
        ConfigStore.instance().store(name=f"{name}_schema", node=node)
