"""A run's `summary.json` as one typed record, `RunSummary`: written with `asdict` (atomically: a
reader never sees half a file) and read back by `read`, which everything that reads a run uses
(the run-dir guards, resume, evaluate, the report). Floor 1: runtime reads it, training writes
it. The fields are the file's contract (README, "Outputs"); the first fourteen are required."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from tlbench import atomic

NAME = "summary.json"


@dataclass
class RunSummary:
    # required (README, "Outputs"); accuracies are fractions in [0, 1]
    status: str = "running"  # running / ok / failed / interrupted
    error: str | None = None
    model: str | None = None
    strategy: str | None = None
    data: str | None = None
    seed: int | None = None
    best_val_acc: float | None = None
    final_val_acc: float | None = None
    test_acc: float | None = None
    trainable_params: int | None = None  # the largest count that trained (lp_ft: everything)
    total_params: int | None = None
    epochs: int | None = None
    fit_seconds: float | None = None  # every segment's, checkpoint writes left out
    train_images_per_second: float | None = None
    # what the run is, known before training
    weights: str | None = None
    samples_per_class: int | None = None
    train_fraction: float | None = None
    image_size: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    max_epochs: int | None = None
    run_dir: str | None = None
    overrides: list[str] | None = None  # the job's Hydra task overrides (None: not recorded)
    # data and model, once built
    num_classes: int | None = None
    split_sizes: dict | None = None
    preprocess: dict | None = None
    bad_files: list = field(default_factory=list)
    trainable_params_by_phase: list[dict] = field(default_factory=list)
    precision: str | None = None
    precision_probe: dict | None = None
    channels_last: bool | None = None
    # the feature cache (training.feature_cache) and the speed settings (training.device)
    cached_features: bool | None = None
    cache_reason: str | None = None
    feature_cache_seconds: float | None = None
    feature_cache: str | None = None
    feature_cache_hit: bool | None = None
    feature_cache_wait_seconds: float | None = None
    feature_extraction_seconds: dict | None = None
    feature_extraction_images: dict | None = None
    feature_cache_made_on: dict | None = None
    cudnn_benchmark: bool | None = None
    matmul_precision: str | None = None
    compiled: str | None = None  # what torch.compile wrapped ("net"), None: not compiled
    num_workers: int | None = None
    input_pipeline: str | None = None
    # what fitting did: one segment per part of a resumed run (training.summary.add_segment)
    segments: list[dict] = field(default_factory=list)
    fit_seconds_estimated: bool = False  # a part killed outright: its time from metrics.csv
    checkpoint_seconds: float | None = None
    epoch_seconds: list[float] = field(default_factory=list)
    phases_run: list[dict] = field(default_factory=list)  # [{from_epoch, trainable}]
    final_train_loss: float | None = None
    best_checkpoint: str | None = None
    last_checkpoint: str | None = None
    resumed_from: str | None = None
    schedule_rebuilt: dict | None = None
    warnings: list[str] = field(default_factory=list)
    peak_rss_mb: float | None = None
    cuda_max_allocated_mb: float | None = None
    # what trained (training.callbacks.weight_drift)
    head_norm: float | None = None
    weight_drift: dict | None = None
    bn_stats_changed: dict | None = None
    weight_drift_basis: str | None = None
    weight_drift_seconds: float | None = None
    weight_drift_warnings: list[str] = field(default_factory=list)
    # how it ended, when not ok
    exit_code: int | None = None
    error_type: str | None = None
    traceback: str | None = None
    failed_before_training: bool | None = None  # the corrected command may reuse the dir
    interrupted_at: dict | None = None  # {epoch, step}
    interrupted_checkpoint: str | None = None

    def update(self, values: dict | None = None, /, **more) -> None:
        """Set fields by name; a name that is not a field is a bug and raises AttributeError."""
        for key, value in {**(values or {}), **more}.items():
            if key not in FIELDS:
                raise AttributeError(f"RunSummary has no field {key!r}")
            setattr(self, key, value)

    def value(self, key: str):
        """A field by name (the report's columns), None for a name that is not one."""
        return getattr(self, key, None) if key in FIELDS else None

    def to_dict(self) -> dict:
        return {k: _clean(v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> RunSummary:
        """A written summary; keys this version does not know (a newer tlbench's) are dropped,
        fields an older file lacks keep their defaults."""
        return cls(**{k: v for k, v in values.items() if k in FIELDS})


FIELDS = frozenset(f.name for f in dataclasses.fields(RunSummary))
REQUIRED = tuple(f.name for f in dataclasses.fields(RunSummary))[:14]


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, DictConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def val_accuracies(rows: list[dict], fallback: float | None = None) -> dict:
    """`best_val_acc` / `final_val_acc` from metrics.csv's rows (every segment of the run); the
    one place both the finished and the interrupted run compute them."""
    val = [r["val/acc"] for r in rows if r.get("val/acc") is not None]
    return {
        "best_val_acc": max(val) if val else fallback,
        "final_val_acc": val[-1] if val else fallback,
    }


def write(run_dir: str | Path, summary: RunSummary) -> Path:
    """Write atomically (tmp + rename) so a reader never sees half a file."""
    text = json.dumps(summary.to_dict(), indent=2, default=str)
    return atomic.write_text(Path(run_dir) / NAME, text + "\n")


def read(path: str | Path) -> RunSummary:
    """The summary of a run dir (or of the summary.json file itself). OSError when it cannot be
    read, ValueError when it is not a summary (not JSON, not an object)."""
    p = Path(path)
    values = json.loads((p / NAME if p.is_dir() else p).read_text(encoding="utf-8"))
    if not isinstance(values, dict):
        raise ValueError(f"expected a JSON object, found {type(values).__name__}")
    return RunSummary.from_dict(values)
