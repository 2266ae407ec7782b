"""`summary.json`: one file per run, finished or failed -- the contract reports and tools read.

Required fields (see README, "Outputs"): status, error, model, strategy, data, seed,
best_val_acc, final_val_acc, test_acc, trainable_params, total_params, epochs, fit_seconds,
train_images_per_second. Accuracies are fractions in [0, 1].
"""

from __future__ import annotations

import json
import math
import resource
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from tlbench import atomic
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
    text = json.dumps({k: _clean(v) for k, v in summary.items()}, indent=2, default=str)
    return atomic.write_text(Path(run_dir) / "summary.json", text + "\n")


def read(path: str | Path) -> dict:
    p = Path(path)
    return json.loads((p / "summary.json" if p.is_dir() else p).read_text(encoding="utf-8"))


def checkpoints(trainer) -> dict:
    """`best_checkpoint` (the monitored ModelCheckpoint's best) and `last_checkpoint` (the end of
    the final epoch: LastCheckpoint's file, see tlbench.training.callbacks.last_checkpoint)."""
    best = last = None
    for cb in trainer.checkpoint_callbacks:
        best = best or getattr(cb, "best_model_path", "") or None
        last = getattr(cb, "last_model_path", "") or last
    return {"best_checkpoint": best, "last_checkpoint": last}


def add_segment(summary: dict, fit_seconds: float, epochs: int, images: int, train_seconds: float):
    """Record one training segment (a run, or one part of a resumed run) and make the top-level
    `fit_seconds` / `train_images_per_second` the totals over all segments (issue 14: a resumed
    run's cost is all of its parts, not its last one)."""
    segment = {
        "fit_seconds": round(fit_seconds, 2),
        "epochs": epochs,
        "images": images,
        "train_seconds": round(train_seconds, 3),
    }
    segments = [*(summary.get("segments") or []), segment]
    summary["segments"] = segments
    summary["fit_seconds"] = round(sum(s.get("fit_seconds") or 0 for s in segments), 2)
    timed = [s for s in segments if s.get("images") and s.get("train_seconds")]
    seconds = sum(s["train_seconds"] for s in timed)
    summary["train_images_per_second"] = (
        round(sum(s["images"] for s in timed) / seconds, 1) if seconds > 0 else None
    )


def random_backbone(cfg, trainable: int, total: int) -> str | None:
    """The warning for a frozen backbone without pretrained weights (e.g. model=lenet5
    strategy=transfer): only the head learns, on features of a random network."""
    strategy, model = cfg.get("strategy") or {}, cfg.get("model") or {}
    if not strategy.get("pretrained", True) or model.get("weights") is not None:
        return None
    if trainable >= total:
        return None
    return (
        f"strategy={_choice('strategy', strategy.get('name'))} freezes most of "
        f"model={model.get('name')}, which has no pretrained weights (model.weights=null): "
        "the frozen part keeps its random initialisation and only the rest trains on random "
        "features. Give model.weights=<a run dir or .ckpt of this model> to transfer, or use "
        "strategy=scratch / finetune"
    )
