"""Reading runs: find run dirs under a folder and load each one's summary.json, metrics.csv and
overrides into a `Run`. Nothing here may crash on odd input: a bad file becomes a run with status
`failed` and an error, a job that has not written its summary yet becomes `started`.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from tlbench import summary_file
from tlbench.config.overrides import parse as parse_override
from tlbench.summary_file import RunSummary

UNFINISHED = ("running", "interrupted", "started")
# Folders that never hold run dirs; skipping them keeps a walk over `outputs/` or a repo cheap.
SKIP_DIRS = {"checkpoints", "tensorboard", "node_modules", "__pycache__", "site-packages"}


def num(value) -> float | None:
    """A finite float, or None for anything else (null, NaN, inf, strings, booleans)."""
    if isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


@dataclass
class Run:
    """One run dir: its summary (None before the run wrote a readable one) and its validation
    curve."""

    dir: Path
    summary: RunSummary | None
    status: str
    error: str | None = None
    overrides: dict[str, str] = field(default_factory=dict)
    curve: list[tuple[int, float]] = field(default_factory=list)  # (epoch from 1, val/acc)

    def get(self, name):
        if name == "trainable_params":
            return self.trainable_params
        return self.summary.value(name) if self.summary is not None else None

    @property
    def seed(self):
        return self.get("seed")

    @property
    def fit_estimated(self) -> bool:
        """Part of `fit_seconds` is recovered, not measured: a segment of the run was killed
        outright and its time was summed from metrics.csv's per-epoch times (a lower bound)."""
        return self.get("fit_seconds_estimated") is True

    @property
    def trainable_params(self) -> float | None:
        """What actually trained: a scheduled strategy (lp_ft, gradual) trains more parameters
        in its later phases than `trainable_params` (the first phase) says, so take the largest
        of `trainable_params_by_phase` when the run has it: [{epoch, trainable}, ...] as
        training writes it, or plain counts, or {phase: count}. `phases_run` (what the epochs
        that ran trained) wins over that plan where the run has it."""
        ran = self.get("phases_run")
        ran = (
            [num(p.get("trainable")) for p in ran if isinstance(p, dict)]
            if isinstance(ran, list)
            else []
        )
        if any(c is not None for c in ran):
            return max(c for c in ran if c is not None)
        phases = self.get("trainable_params_by_phase")
        if isinstance(phases, dict):
            phases = list(phases.values())
        phases = phases if isinstance(phases, list) else []
        counts = [num(p.get("trainable") if isinstance(p, dict) else p) for p in phases]
        total = num(self.summary.trainable_params if self.summary else None)
        counts = [c for c in (*counts, total) if c is not None]
        return max(counts) if counts else None


def find_run_dirs(root: Path) -> list[Path]:
    """Dirs holding a summary.json, or a Hydra job dir (.hydra/) that has not written one yet."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if "summary.json" in filenames or (
            ".hydra" in dirnames and (here / ".hydra" / "overrides.yaml").is_file()
        ):
            found.append(here)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIP_DIRS)
    return sorted(found, key=_natural)


def _natural(path: Path) -> list:
    """Sort job dirs 0, 1, 2, ..., 10 rather than 0, 1, 10, 2 (numbers before names)."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in path.parts]


def read_overrides_yaml(run_dir: Path) -> list[str]:
    """`.hydra/overrides.yaml` (a YAML list of strings) without needing a YAML parser."""
    path = run_dir / ".hydra" / "overrides.yaml"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    return [ln[2:].strip().strip("'\"") for ln in lines if ln.startswith("- ")]


def read_curve(run_dir: Path) -> list[tuple[int, float]]:
    """(epoch counted from 1, val/acc) from metrics.csv; [] when missing or unreadable."""
    path = run_dir / "metrics.csv"
    curve: list[tuple[int, float]] = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            for i, row in enumerate(csv.DictReader(f)):
                acc = num(row.get("val/acc"))
                epoch = num(row.get("epoch"))
                if acc is not None:
                    curve.append((int(epoch) + 1 if epoch is not None else i + 1, acc))
    except (OSError, csv.Error, UnicodeDecodeError, ValueError):
        return []
    return curve


def load_run(run_dir: Path) -> Run:
    path = run_dir / "summary.json"
    if not path.is_file():
        return Run(
            run_dir,
            None,
            "started",
            "no summary.json yet (job starting, or killed before training began)",
            overrides=dict(parse_override(o) for o in read_overrides_yaml(run_dir)),
        )
    try:
        summary = summary_file.read(path)
    except (OSError, ValueError) as exc:  # ValueError: also not JSON, not UTF-8
        return Run(run_dir, None, "failed", f"unreadable summary.json: {exc}")
    status = str(summary.status or "unknown")
    overrides = summary.overrides
    if not isinstance(overrides, list):
        overrides = read_overrides_yaml(run_dir)
    run = Run(
        run_dir,
        summary,
        status,
        error=None if summary.error is None else str(summary.error),
        overrides=dict(parse_override(o) for o in overrides),
        curve=read_curve(run_dir),
    )
    if status == "ok" and num(summary.best_val_acc) is None and not run.curve:
        # Finished without a single finite validation accuracy (e.g. the loss went NaN).
        run.error = run.error or "finished without a finite validation accuracy (NaN?)"
    return run


def load_runs(root: Path) -> list[Run]:
    return [load_run(d) for d in find_run_dirs(root)]


ACROSS_MODELS = "(models compared)"  # the model column when strategies of several models compete


def across_models(run: Run) -> Run:
    """The run as one arm of a comparison across models (`--across-models`): its strategy label
    names the model too ("transfer · efficientnet_lite0"), and every run shares one model
    column, so the verdict compares e.g. a source model's transfer with ImageNet transfer and
    scratch in one cell. Selection still happens per (strategy, model) arm."""
    if run.summary is None:
        return run
    s = run.summary
    summary = replace(s, strategy=f"{s.strategy or '?'} · {s.model or '?'}", model=ACROSS_MODELS)
    overrides = {k: v for k, v in run.overrides.items() if k not in ("model", "strategy")}
    return replace(run, summary=summary, overrides=overrides)
