"""Sweep -> comparison: `report.md`, `report.csv` and PNG plots for any folder of runs.

    python -m tlbench.report outputs/multiruns/2026-11-22_10-00-00

Walks the folder for `summary.json` files (any depth: one sweep, several sweeps, a sweep still
running or interrupted), groups the runs into configurations and writes one row per
configuration: mean ± std over seeds and n. A *configuration* is a run's command-line overrides
minus the replicate keys (`seed`, `data.subset_seed`, `data.split_seed`) and the keys that do not
change results (logger, progress bar, paths, hydra.*), plus the identity fields of its summary
(data, model, strategy, label budget, image size, lr, ...), so runs composed without Hydra
overrides still group correctly. Failed runs are listed with their errors; running, interrupted
and started-but-silent runs are listed as unfinished. Nothing here may crash on odd input: a bad
file becomes a line in the report, never an exception.

The Hydra callback `tlbench.report.callback.ReportCallback` calls `write_report` at the end of
every multirun. This module never imports torch, so the CLI starts in a second.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

REPLICATE_KEYS = ("seed", "data.subset_seed", "data.split_seed")
# Overrides that change where/how a run is logged, not what it measures.
NEUTRAL_KEYS = ("logger", "trainer.enable_progress_bar", "trainer.enable_model_summary")
NEUTRAL_PREFIXES = ("hydra.", "hydra/", "paths.", "logger.")
# Overrides already shown as table columns (so they never repeat in the `config` column).
COLUMN_KEYS = ("data", "model", "strategy", "data.samples_per_class", "data.train_fraction")
# Summary fields that identify a configuration, and the override that sets each.
IDENTITY = ("data", "model", "strategy", "samples_per_class", "train_fraction")
SETTINGS = {
    "image_size": "data.image_size",
    "batch_size": "data.batch_size",
    "lr": "optimizer.lr",
    "max_epochs": "trainer.max_epochs",
}  # not `weights`: train() rewrites it with the origin it loaded (DEFAULT -> package:...)
METRICS = (
    "best_val_acc",
    "final_val_acc",
    "test_acc",
    "fit_seconds",
    "train_images_per_second",
    "trainable_params",
    "total_params",
    "epochs",
)
STRATEGY_ORDER = ("transfer", "finetune", "scratch")
UNFINISHED = ("running", "interrupted", "started")
# Folders that never hold run dirs; skipping them keeps a walk over `outputs/` or a repo cheap.
SKIP_DIRS = {"checkpoints", "tensorboard", "node_modules", "__pycache__", "site-packages"}
CSV_NAME, MD_NAME = "report.csv", "report.md"


def num(value) -> float | None:
    """A finite float, or None for anything else (null, NaN, inf, strings, booleans)."""
    if isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def mean_std(values) -> tuple[float | None, float | None, int]:
    """Mean, sample std (n - 1; None below two values) and count of the finite values."""
    xs = [x for x in (num(v) for v in values) if x is not None]
    if not xs:
        return None, None, 0
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, None, len(xs)
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)), len(xs)


def parse_override(text: str) -> tuple[str, str]:
    """'+data.samples_per_class=5' -> ('data.samples_per_class', '5'); '~foo' -> ('foo', '~')."""
    text = str(text)
    key, sep, value = text.partition("=")
    if key.startswith("~"):
        return key.lstrip("~"), "~" + value
    return key.lstrip("+"), value if sep else ""


def _is_neutral(key: str) -> bool:
    return key in NEUTRAL_KEYS or key.startswith(NEUTRAL_PREFIXES)


@dataclass
class Run:
    """One run dir: its summary (possibly empty) and its validation curve."""

    dir: Path
    summary: dict
    status: str
    error: str | None = None
    overrides: dict[str, str] = field(default_factory=dict)
    curve: list[tuple[int, float]] = field(default_factory=list)  # (epoch from 1, val/acc)

    def get(self, name):
        return self.summary.get(name)

    @property
    def seed(self):
        return self.summary.get("seed")


@dataclass
class Group:
    """Runs of one configuration (all statuses); statistics come from the `ok` ones."""

    key: tuple
    runs: list[Run]
    extras: dict[str, str] = field(default_factory=dict)  # varying settings beyond the columns

    @property
    def ok(self) -> list[Run]:
        return [r for r in self.runs if r.status == "ok"]

    def first(self, name):
        for r in self.runs:
            if r.get(name) is not None:
                return r.get(name)
        return None

    @property
    def strategy(self) -> str:
        return str(self.first("strategy") or "?")

    @property
    def budget(self) -> str:
        return budget_label(self.first("samples_per_class"), self.first("train_fraction"))

    @property
    def labels_per_class(self) -> float | None:
        return mean_std(labels_per_class(r.summary) for r in self.runs)[0]

    @property
    def config(self) -> str:
        return " ".join(f"{k}={v}" for k, v in sorted(self.extras.items()))

    def stat(self, metric: str) -> tuple[float | None, float | None, int]:
        return mean_std(r.get(metric) for r in self.ok)

    def count(self, *statuses: str) -> int:
        return sum(r.status in statuses for r in self.runs)


def budget_label(samples_per_class, train_fraction) -> str:
    spc, tf = num(samples_per_class), num(train_fraction)
    if spc is not None:
        return f"{spc:g}/class"
    if tf is not None:
        return f"{100 * tf:g} % of train"
    return "all"


def labels_per_class(summary: dict) -> float | None:
    """Training labels per class: the budget itself, or the split size over the class count."""
    spc = num(summary.get("samples_per_class"))
    if spc is not None:
        return spc
    sizes = summary.get("split_sizes")
    train, classes = (
        (num(sizes.get("train")) if isinstance(sizes, dict) else None),
        num(summary.get("num_classes")),
    )
    return train / classes if train and classes else None


# ---------------------------------------------------------------------------------------- load


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
    """Sort job dirs 0, 1, 2, ..., 10 rather than 0, 1, 10, 2."""
    return [int(p) if p.isdigit() else p for p in path.parts]


def _read_overrides_yaml(run_dir: Path) -> list[str]:
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
            {},
            "started",
            "no summary.json yet (job starting, or killed before training began)",
            overrides=dict(parse_override(o) for o in _read_overrides_yaml(run_dir)),
        )
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(summary, dict):
            raise ValueError(f"expected a JSON object, found {type(summary).__name__}")
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return Run(run_dir, {}, "failed", f"unreadable summary.json: {exc}")
    status = str(summary.get("status") or "unknown")
    overrides = summary.get("overrides")
    if not isinstance(overrides, list):
        overrides = _read_overrides_yaml(run_dir)
    run = Run(
        run_dir,
        summary,
        status,
        error=None if summary.get("error") is None else str(summary.get("error")),
        overrides=dict(parse_override(o) for o in overrides),
        curve=read_curve(run_dir),
    )
    if status == "ok" and num(summary.get("best_val_acc")) is None and not run.curve:
        # Finished without a single finite validation accuracy (e.g. the loss went NaN).
        run.error = run.error or "finished without a finite validation accuracy (NaN?)"
    return run


def load_runs(root: Path) -> list[Run]:
    return [load_run(d) for d in find_run_dirs(root)]


# --------------------------------------------------------------------------------------- group


def _config_overrides(run: Run) -> dict[str, str]:
    return {
        k: v for k, v in run.overrides.items() if k not in REPLICATE_KEYS and not _is_neutral(k)
    }


def group_runs(runs: list[Run]) -> list[Group]:
    """One group per configuration; the `extras` name what varies beyond the table columns."""
    groups: dict[tuple, Group] = {}
    for run in runs:
        ident = tuple(str(run.get(k)) for k in (*IDENTITY, *SETTINGS))
        key = (ident, tuple(sorted(_config_overrides(run).items())))
        if not run.summary:  # no summary: only the overrides say what it was
            key = (("?",) * len(ident), key[1])
        groups.setdefault(key, Group(key, []))
        groups[key].runs.append(run)

    # Which override keys / settings take more than one value across the whole folder.
    all_keys = {k for r in runs for k in _config_overrides(r)} - set(COLUMN_KEYS)
    varying = {
        k for k in all_keys if len({_config_overrides(r).get(k) for r in runs if r.summary}) > 1
    }
    # A summary setting nobody overrode (e.g. a preset's lr) is shown only where it is needed
    # to tell two otherwise identical rows apart.
    cells = defaultdict(set)
    for r in runs:
        if r.summary:
            cells[tuple(str(r.get(k)) for k in IDENTITY)].add(
                tuple(str(r.get(n)) for n in SETTINGS)
            )
    settings = {
        name
        for i, (name, key) in enumerate(SETTINGS.items())
        if key not in varying and any(len({v[i] for v in vs}) > 1 for vs in cells.values())
    }
    for g in groups.values():
        ref = g.runs[0]
        extras = {k: _config_overrides(ref).get(k, "(default)") for k in varying}
        extras.update({name: str(ref.get(name)) for name in settings})
        g.extras = extras
    return sorted(groups.values(), key=_group_order)


def _group_order(g: Group):
    s = g.strategy
    rank = STRATEGY_ORDER.index(s) if s in STRATEGY_ORDER else len(STRATEGY_ORDER)
    lpc = g.labels_per_class
    return (
        str(g.first("data")),
        str(g.first("model")),
        g.config,
        lpc if lpc is not None else math.inf,
        rank,
        s,
    )


def score_metric(groups: list[Group]) -> tuple[str, str]:
    """The accuracy plots compare: test acc when every finished configuration has one."""
    finished = [g for g in groups if g.stat("best_val_acc")[2] or g.stat("test_acc")[2]]
    if finished and all(g.stat("test_acc")[2] for g in finished):
        return "test_acc", "test accuracy"
    return "best_val_acc", "best validation accuracy"


# -------------------------------------------------------------------------------------- format


def pct(m, s=None) -> str:
    if m is None:
        return "–"
    return f"{100 * m:.1f} ± {100 * s:.1f} %" if s is not None else f"{100 * m:.1f} %"


def seconds(m, s=None) -> str:
    if m is None:
        return "–"
    text = f"{m:.0f}" if m >= 10 else f"{m:.1f}"
    return (
        f"{text} ± {s:.0f} s"
        if s is not None and m >= 10
        else (f"{text} ± {s:.1f} s" if s is not None else f"{text} s")
    )


def count(m) -> str:
    if m is None:
        return "–"
    if m >= 1e6:
        return f"{m / 1e6:.2f} M"
    return f"{m:,.0f}"


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _short(text: str | None, limit: int = 300) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


CSV_FIELDS = (
    "data",
    "model",
    "strategy",
    "label_budget",
    "labels_per_class",
    "config",
    "n",
    "n_failed",
    "n_unfinished",
    "seeds",
    "best_val_acc_mean",
    "best_val_acc_std",
    "test_acc_mean",
    "test_acc_std",
    "final_val_acc_mean",
    "final_val_acc_std",
    "fit_seconds_mean",
    "fit_seconds_std",
    "train_images_per_second_mean",
    "train_images_per_second_std",
    "trainable_params",
    "total_params",
    "epochs_mean",
    "run_dirs",
)


def csv_rows(groups: list[Group], root: Path) -> list[dict]:
    rows = []
    for g in groups:
        row = {
            "data": g.first("data"),
            "model": g.first("model"),
            "strategy": g.strategy,
            "label_budget": g.budget,
            "labels_per_class": g.labels_per_class,
            "config": g.config,
            "n": len(g.ok),
            "n_failed": g.count("failed", "unknown"),
            "n_unfinished": g.count(*UNFINISHED),
            "seeds": " ".join(str(r.seed) for r in g.ok),
            "trainable_params": g.stat("trainable_params")[0],
            "total_params": g.stat("total_params")[0],
            "epochs_mean": g.stat("epochs")[0],
            "run_dirs": " ".join(_rel(r.dir, root) for r in g.runs),
        }
        for metric in ("best_val_acc", "test_acc", "final_val_acc", "fit_seconds"):
            m, s, _ = g.stat(metric)
            row[f"{metric}_mean"], row[f"{metric}_std"] = m, s
        m, s, _ = g.stat("train_images_per_second")
        row["train_images_per_second_mean"], row["train_images_per_second_std"] = m, s
        rows.append({k: _csv_value(row.get(k)) for k in CSV_FIELDS})
    return rows


def _csv_value(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:.6g}"
    return v


def _rel(path: Path, root: Path) -> str:
    try:
        rel = path.resolve().relative_to(root.resolve())
    except ValueError:
        return str(path)
    return str(rel) if str(rel) != "." else "."


def results_table(groups: list[Group]) -> list[str]:
    shown = [g for g in groups if g.runs and any(r.summary for r in g.runs)]
    with_config = any(g.config for g in shown)
    head = ["data", "model", "strategy", "label budget"]
    head += ["config"] if with_config else []
    head += ["n", "best val acc", "test acc", "fit time", "train img/s", "trainable params"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for g in shown:
        n = len(g.ok)
        note = []
        if g.count("failed", "unknown"):
            note.append(f"{g.count('failed', 'unknown')} failed")
        if g.count(*UNFINISHED):
            note.append(f"{g.count(*UNFINISHED)} unfinished")
        cells = [g.first("data"), g.first("model"), g.strategy, g.budget]
        cells += [g.config or "–"] if with_config else []
        ips = g.stat("train_images_per_second")[0]
        cells += [
            f"{n}" + (f" ({', '.join(note)})" if note else ""),
            pct(*g.stat("best_val_acc")[:2]),
            pct(*g.stat("test_acc")[:2]),
            seconds(*g.stat("fit_seconds")[:2]),
            "–" if ips is None else f"{ips:,.0f}",
            count(g.stat("trainable_params")[0]),
        ]
        lines.append("| " + " | ".join(_cell(c if c is not None else "–") for c in cells) + " |")
    return lines


def _run_line(run: Run, root: Path, status: str | None = None) -> str:
    s = run.summary
    what = " ".join(
        f"{k}={s.get(k)}" for k in ("model", "strategy", "data", "seed") if s.get(k) is not None
    )
    if not what and run.overrides:
        what = " ".join(f"{k}={v}" for k, v in run.overrides.items())
    cells = [f"`{_rel(run.dir, root)}`", status or run.status, what or "–", _short(run.error)]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


# --------------------------------------------------------------------------------------- write


def write_report(root: str | Path, *, plots: bool = True) -> Path:
    """Write report.md, report.csv and the PNG plots into `root`; return the report.md path.

    Raises FileNotFoundError / NotADirectoryError for a bad root and LookupError when no run is
    found; everything odd *inside* the runs ends up in the report instead.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a directory")
    runs = load_runs(root)
    if not runs:
        raise LookupError(f"no summary.json under {root}")
    groups = group_runs(runs)

    rows = csv_rows(groups, root)
    _atomic_write(root / CSV_NAME, _csv_text(rows))

    sections: list[list[str]] = []
    if plots:
        from tlbench.report import plots as report_plots

        sections = report_plots.make_all(groups, root)
    _atomic_write(root / MD_NAME, markdown(root, runs, groups, sections))
    return root / MD_NAME


def _csv_text(rows: list[dict]) -> str:
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _atomic_write(path: Path, text: str) -> None:
    """tmp + rename: a reader (or a parallel job's report) never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def markdown(root: Path, runs: list[Run], groups: list[Group], sections: list[list[str]]) -> str:
    ok = sum(r.status == "ok" for r in runs)
    failed = [r for r in runs if r.status not in ("ok", *UNFINISHED)]
    unfinished = [r for r in runs if r.status in UNFINISHED]
    _, metric_name = score_metric(groups)
    lines = [
        "# tlbench comparison report",
        "",
        f"`{root}`: {len(runs)} runs — {ok} ok, {len(failed)} failed, {len(unfinished)} "
        f"unfinished; {len(groups)} configurations. Written {datetime.now():%Y-%m-%d %H:%M:%S}.",
        "",
        "One row per configuration (the run's overrides minus `seed`): mean ± std over the "
        "finished seeds, n = finished runs. Accuracies are on the validation / test split; fit "
        "time is wall-clock `trainer.fit`; train img/s counts training steps only. Plots compare "
        f"the {metric_name}. Machine-readable: [`{CSV_NAME}`]({CSV_NAME}).",
        "",
        "## Results",
        "",
        *results_table(groups),
        "",
    ]
    for section in sections:
        lines += [*section, ""]
    if failed:
        lines += ["## Failed runs", "", "| run | status | what | error |", "|---|---|---|---|"]
        lines += [_run_line(r, root) for r in failed]
        lines.append("")
    if unfinished:
        lines += [
            "## Unfinished runs",
            "",
            "Still running, interrupted, or killed without a chance to record it (a run killed "
            "outright stays `running`). Re-run `python -m tlbench.report` to refresh.",
            "",
            "| run | status | what | note |",
            "|---|---|---|---|",
        ]
        lines += [_run_line(r, root) for r in unfinished]
        lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tlbench.report",
        description="Write report.md, report.csv and PNG plots comparing every run under DIR "
        "(a sweep dir, several sweeps, or a sweep still running).",
    )
    parser.add_argument("dir", help="folder to search (recursively) for summary.json files")
    parser.add_argument("--no-plots", action="store_true", help="tables only (faster)")
    args = parser.parse_args(argv)
    from tlbench.errors import TlbenchError

    root = Path(args.dir)
    try:
        if not root.is_dir():
            raise TlbenchError(
                "no such directory" if not root.exists() else "not a directory",
                key="dir",
                value=str(root),
                allowed="a folder of tlbench runs, e.g. outputs/multiruns/<timestamp>",
                fix="pass the sweep dir printed by `python -m tlbench --multirun ...`",
            )
        try:
            path = write_report(root, plots=not args.no_plots)
        except LookupError:
            raise TlbenchError(
                "found no summary.json (no tlbench run) in this folder or below",
                key="dir",
                value=str(root),
                fix="point at a run dir or a sweep dir, e.g. outputs/multiruns/<timestamp>",
            ) from None
    except TlbenchError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    print(f"comparison report: {path} (+ {CSV_NAME}, PNG plots)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
