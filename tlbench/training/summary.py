"""`summary.json`: one file per run, finished or failed -- the contract reports and tools read.

Required fields (see README, "Outputs"): status, error, model, strategy, data, seed,
best_val_acc, final_val_acc, test_acc, trainable_params, total_params, epochs, fit_seconds,
train_images_per_second. Accuracies are fractions in [0, 1].
"""

from __future__ import annotations

import json
import math
import os
import resource
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from tlbench.config import runtime as hydra_runtime

REQUIRED = (
    "status",
    "error",
    "model",
    "strategy",
    "data",
    "seed",
    "best_val_acc",
    "final_val_acc",
    "test_acc",
    "trainable_params",
    "total_params",
    "epochs",
    "fit_seconds",
    "train_images_per_second",
)


def _choice(group: str, fallback: str | None) -> str | None:
    """The config-group choice (`strategy=lp_ft` -> 'lp_ft'), falling back to the node's name."""
    return hydra_runtime.choice(group) or fallback


def start(cfg: DictConfig) -> dict:
    """Everything knowable before training; metrics start as None."""
    data = cfg.get("data", {}) or {}
    model = cfg.get("model", {}) or {}
    model_name = model.get("name")
    if model.get("source") == "timm":
        model_name = f"timm/{model_name}"
    summary = dict.fromkeys(REQUIRED)
    summary.update(
        status="running",
        model=model_name,
        strategy=_choice("strategy", (cfg.get("strategy") or {}).get("name")),
        data=_choice("data", data.get("name")),
        seed=cfg.get("seed"),
        weights=model.get("weights")
        if (cfg.get("strategy") or {}).get("pretrained", True)
        else None,
        samples_per_class=data.get("samples_per_class"),
        train_fraction=data.get("train_fraction"),
        image_size=data.get("image_size"),
        batch_size=data.get("batch_size"),
        lr=(cfg.get("optimizer") or {}).get("lr"),
        max_epochs=(cfg.get("trainer") or {}).get("max_epochs"),
        run_dir=str(cfg.paths.output_dir),
        overrides=hydra_runtime.task_overrides(),
    )
    return summary


def peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (
        rss / 1024 / 1024 if sys.platform == "darwin" else rss / 1024
    )  # bytes on macOS, KiB on Linux


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, DictConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def write(run_dir: str | Path, summary: dict) -> Path:
    """Write atomically (tmp + rename) so a reader never sees half a file."""
    path = Path(run_dir) / "summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(
        json.dumps({k: _clean(v) for k, v in summary.items()}, indent=2, default=str) + "\n",
        encoding="utf-8",
    )
    os.replace(tmp, path)
    return path


def read(path: str | Path) -> dict:
    p = Path(path)
    return json.loads((p / "summary.json" if p.is_dir() else p).read_text(encoding="utf-8"))
