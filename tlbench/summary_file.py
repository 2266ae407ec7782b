"""A run's `summary.json`, read and written (floor 1: the run-dir guards of runtime read it, the
training run writes it, the report reads it). Written atomically: a reader never sees half a file.
What goes into it is training's business (tlbench.training.summary)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from tlbench import atomic

NAME = "summary.json"


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


def write(run_dir: str | Path, summary: dict) -> Path:
    """Write atomically (tmp + rename) so a reader never sees half a file."""
    text = json.dumps({k: _clean(v) for k, v in summary.items()}, indent=2, default=str)
    return atomic.write_text(Path(run_dir) / NAME, text + "\n")


def read(path: str | Path) -> dict:
    """The summary of a run dir (or of the summary.json file itself)."""
    p = Path(path)
    return json.loads((p / NAME if p.is_dir() else p).read_text(encoding="utf-8"))
