"""Run dirs as tlbench writes them (summary.json, metrics.csv, .hydra/overrides.yaml), built
directly in a tmp folder so report tests need no training."""

from __future__ import annotations

import json
from pathlib import Path


def make_run(
    root: Path,
    name: str,
    *,
    strategy: str,
    seed: int,
    spc: int | None,
    best=None,
    test=None,
    fit=None,
    ips=100.0,
    trainable=12810,
    status="ok",
    error=None,
    curve=(),
    extra_overrides=(),
    raw_summary: str | None = None,
    final=None,
    summary_extra: dict | None = None,
) -> Path:
    """A run dir as tlbench writes it: summary.json (+ metrics.csv when a curve is given)."""
    run = root / name
    run.mkdir(parents=True)
    overrides = [f"strategy={strategy}", f"seed={seed}", *extra_overrides]
    if spc is not None:
        overrides.append(f"data.samples_per_class={spc}")
    summary = {
        "status": status,
        "error": error,
        "model": "efficientnet_lite0",
        "strategy": strategy,
        "data": "digits",
        "seed": seed,
        "best_val_acc": best,
        "final_val_acc": best if final is None else final,
        "test_acc": test,
        "trainable_params": trainable,
        "total_params": 3383818,
        "epochs": len(curve) or None,
        "fit_seconds": fit,
        "train_images_per_second": ips,
        "samples_per_class": spc,
        "train_fraction": None,
        "image_size": 48,
        "lr": 0.001,
        "max_epochs": 3,
        "overrides": overrides,
        "num_classes": 10,
        "split_sizes": {"train": 1257, "val": 270, "test": 270},
        **(summary_extra or {}),
    }
    # json.dumps writes float('nan') as the literal NaN, which is what a careless writer produces
    (run / "summary.json").write_text(raw_summary or json.dumps(summary), encoding="utf-8")
    if curve:
        lines = ["epoch,step,train/loss,val/acc"]
        lines += [f"{i},{i * 4},1.0,{'' if acc is None else acc}" for i, acc in enumerate(curve)]
        (run / "metrics.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return run
