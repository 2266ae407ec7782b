"""The one build path of a run's data and module, used by training (`build_run`) and by the
ranking (`wire` with a candidate's model config): validated config in, seeded datamodule with the
weights' preprocessing and a TransferModule for its classes out."""

from __future__ import annotations

import lightning as L
from omegaconf import DictConfig, OmegaConf

from tlbench.config import validation
from tlbench.config.instantiate import instantiate
from tlbench.models import registry
from tlbench.preprocess import Preprocess
from tlbench.training import lr_groups
from tlbench.training.device import check_speed_keys
from tlbench.training.module import TransferModule


def container(node) -> dict | None:
    return OmegaConf.to_container(node, resolve=True) if node is not None else None


def validate(cfg: DictConfig) -> Preprocess:
    """Cheap checks of the whole config before any data is read or model built; returns the
    preprocessing the model's weights expect (described once per run)."""
    validation.validate_config(cfg)  # keys, types, values, folders (tlbench/config/)
    check_speed_keys(cfg)  # compile, cudnn_benchmark, matmul_precision
    pretrained = bool(cfg.strategy.get("pretrained", True)) and cfg.model.get("weights") is not None
    size = cfg.data.get("image_size")
    preprocess = registry.validate(cfg.model, image_size=size, pretrained=pretrained)
    lr_groups.check_patterns(cfg.model, cfg.strategy, size)  # patterns matching nothing
    return preprocess or registry.describe(cfg.model, pretrained, image_size=size)


def wire(
    cfg: DictConfig,
    preprocess: Preprocess,
    model: dict,
    strategy: dict,
    optimizer: dict | None = None,
    splits: tuple[str, ...] | None = None,
) -> tuple[L.LightningDataModule, TransferModule]:
    """Seed, then the datamodule (`cfg.data` with `preprocess`; only `splits` kept when given)
    and the module for its classes. `optimizer` None: the module is not fitted (ranking)."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.data, "data", preprocess=preprocess.to_dict())
    datamodule.prepare_data()  # the only step that may download (data.download=true)
    datamodule.setup("fit")
    for name in [s for s in datamodule.splits if splits is not None and s not in splits]:
        del datamodule.splits[name]
    module = TransferModule(
        model=model,
        strategy=strategy,
        num_classes=datamodule.num_classes,
        class_names=list(datamodule.class_names),
        optimizer=optimizer,
        scheduler=container(cfg.get("scheduler")),
        preprocess=datamodule.preprocess.to_dict(),
        channels_last=cfg.get("channels_last", "auto"),
        load_pretrained=bool(strategy.get("pretrained", True)),
    )
    return datamodule, module


def build_run(cfg: DictConfig) -> tuple[L.LightningDataModule, TransferModule]:
    """Validate, then wire data and model from the run's own config."""
    preprocess = validate(cfg)
    return wire(
        cfg, preprocess, container(cfg.model), container(cfg.strategy), container(cfg.optimizer)
    )
