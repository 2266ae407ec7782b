"""What the shipped configs contain, read from conf/ (never a hand-kept list)."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from tlbench.config import CONF_DIR


def train_groups() -> list[str]:
    """The config groups conf/train.yaml's defaults list selects, in its order (hydra excluded;
    `experiment` is last and null by default)."""
    groups = []
    for entry in OmegaConf.load(CONF_DIR / "train.yaml").defaults:
        if isinstance(entry, DictConfig):
            groups += [str(k).split("@")[0] for k in entry if str(k) != "hydra"]
    return groups
