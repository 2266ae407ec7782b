"""The one place that asks Hydra about the running job (`HydraConfig`), so every caller gets the
same answer outside a Hydra app (tests and notebooks composing configs directly): no Hydra job.
"""

from __future__ import annotations

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig


def hydra_config() -> DictConfig | None:
    """The running job's `hydra` node, or None outside a Hydra app."""
    return HydraConfig.get() if HydraConfig.initialized() else None


def is_multirun() -> bool:
    hc = hydra_config()
    return hc is not None and hc.mode == RunMode.MULTIRUN


def choice(group: str) -> str | None:
    """The config-group choice of the running job (`strategy=lp_ft` -> 'lp_ft')."""
    hc = hydra_config()
    return hc.runtime.choices.get(group) if hc is not None else None


def task_overrides() -> list[str]:
    """The job's own command-line overrides (`hydra.overrides.task`)."""
    hc = hydra_config()
    return [str(o) for o in hc.overrides.task] if hc is not None else []
