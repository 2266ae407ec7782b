"""The one place that asks Hydra about the running job (`HydraConfig`), so every caller gets the
same answer outside a Hydra app (tests and notebooks composing configs directly): no Hydra job.
"""

from __future__ import annotations

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from tlbench import cluster, summary_file


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


def unless_skipped(value, instead=None, *, _root_):
    """`${tlbench_unless_skipped:<value>[,<instead>]}` (conf/hydra/default.yaml): `value`, or
    `instead` when this job is skipped (skip_completed=true, or a requeued SLURM job, and its
    dir's summary.json says ok: runtime.resume.continues).
    Hydra writes `.hydra/` and opens `train.log` before the task function can say "skipped", so
    this is the one place that keeps a finished run's files untouched."""
    try:
        if not (_root_.get("skip_completed") or cluster.requeued()) or _root_.get("resume"):
            return value
        out = OmegaConf.select(_root_, "hydra.runtime.output_dir", default=None)
        return instead if out and summary_file.read(str(out)).status == "ok" else value
    except Exception:  # outside a job (compose), no summary yet: Hydra writes as usual
        return value
