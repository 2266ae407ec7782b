"""`write_report(root)`: runs -> configurations -> per-strategy selection -> verdict, tables and
plots, written as report.md, report.csv and PNGs into `root`.

Walks the folder for `summary.json` files (any depth: one sweep, several sweeps, a sweep still
running or interrupted). Failed runs are listed with their errors; running, interrupted and
started-but-silent runs are listed as unfinished. A bad file becomes a line in the report, never
an exception. This package never imports torch, so the CLI starts in a second.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from tlbench import atomic
from tlbench.report import tables
from tlbench.report.groups import Group, group_runs, score_metric
from tlbench.report.health import never_started
from tlbench.report.runs import UNFINISHED, Run, load_runs
from tlbench.report.runs import across_models as across
from tlbench.report.selection import Arm, any_search, select
from tlbench.report.verdict import section as verdict_section

CSV_NAME, MD_NAME = "report.csv", "report.md"


def write_report(
    root: str | Path, *, plots: bool = True, across_models: bool = False, allow_collapsed=False
) -> Path:
    """Write report.md, report.csv and the PNG plots into `root`; return the report.md path.
    `across_models`: compare every (strategy, model) pair of a data set and label budget in one
    verdict (`tlbench.report.runs.across_models`), instead of strategies within each model.
    `allow_collapsed`: let selection pick a setting whose runs collapsed after a schedule switch
    (by default it ranks below the stable ones: `tlbench.report.selection`).

    Raises FileNotFoundError / NotADirectoryError for a bad root and LookupError when no run is
    found; everything odd *inside* the runs ends up in the report instead.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a directory")
    # report files of an earlier report killed mid-write (`.report.csv.<pid>.<token>.tmp`)
    atomic.remove_orphans(root)
    runs = load_runs(root)
    if not runs:
        raise LookupError(f"no summary.json under {root}")
    if across_models:
        runs = [across(r) for r in runs]
    groups = group_runs(runs)
    arms = select(groups, allow_collapsed=allow_collapsed)

    atomic.write_text(root / CSV_NAME, tables.csv_text(tables.csv_rows(groups, arms, root)))
    sections: list[list[str]] = []
    if plots:
        from tlbench.report import plots as report_plots

        sections = report_plots.make_all(groups, arms, root)
    from tlbench.report import ranking_check, tuning, what_trained

    more = [tuning.section(arms, root, plots), what_trained.section(arms, root, plots)]
    sections += [s for s in [*more, ranking_check.section(root)] if s]
    atomic.write_text(root / MD_NAME, markdown(root, runs, groups, arms, sections))
    return root / MD_NAME


def verdict_of(md_path: Path) -> list[str]:
    """The verdict's lines of a written report.md (for the CLI and the sweep's last words)."""
    try:
        text = Path(md_path).read_text(encoding="utf-8")
    except OSError:
        return []
    section = text.partition("## Verdict\n")[2].partition("\n## ")[0]
    return [ln for ln in section.splitlines() if ln.startswith("- ")]


def markdown(
    root: Path, runs: list[Run], groups: list[Group], arms: list[Arm], sections: list[list[str]]
) -> str:
    ok = sum(r.status == "ok" for r in runs)
    failed = [r for r in runs if r.status not in ("ok", *UNFINISHED)]
    unfinished = [r for r in runs if r.status in UNFINISHED]
    metric, metric_name = score_metric(groups)
    search = any_search(arms)
    note = tables.estimated_note(groups)  # † on costs resting on recovered fit times
    lines = [
        "# tlbench comparison report",
        "",
        f"`{root}`: {len(runs)} runs — {ok} ok, {len(failed)} failed, {len(unfinished)} "
        f"unfinished; {len(groups)} configurations. Written {datetime.now():%Y-%m-%d %H:%M:%S}.",
        "",
        *verdict_section(arms, metric, metric_name, never_started(root, runs)),
        "",
    ]
    if search:
        lines += _selection_sections(arms, note)
    lines += [
        "## Results" if not search else "## All configurations",
        "",
        "One row per configuration (the run's overrides minus seeds and the overrides that do "
        "not change the experiment): mean ± std over the finished seeds, n = finished runs. "
        "Accuracies are on the validation / test split; cost is per run: the median epoch's "
        "wall time × the epochs (every segment of a resumed run; the median, so epochs slowed "
        "by a loaded machine do not scale it), plus its own one-offs (reading a feature cache) "
        "and the feature extraction one run needs, measured once when the cache was written "
        'and named; settings with runs whose epoch times vary by more than 2x say "noisy '
        'timings" (runs written before per-epoch times existed cost their `trainer.fit` '
        "time); train img/s counts training steps only; trainable "
        f"params is the largest phase that trained. Plots compare the {metric_name}. "
        f"Machine-readable: [`{CSV_NAME}`]({CSV_NAME}).",
        "",
        *tables.results_table(groups, {id(a.selected) for a in arms} if search else None),
        "",
        *([] if search else note),
    ]
    for sec in sections:
        lines += [*sec, ""]
    lines += _run_sections(root, failed, unfinished)
    return "\n".join(lines)


def _selection_sections(arms: list[Arm], note: list[str]) -> list[str]:
    return [
        "## Selected settings",
        "",
        "Each strategy's setting (the overrides beyond data, model, strategy and label "
        "budget) with the best mean validation accuracy over its seeds; the test accuracy "
        "is that setting's, never used to choose. Search cost: the cost of every run the "
        "arm tried, each shared one-off (feature extraction per cache key, precision probe) "
        "counted once.",
        "",
        *tables.selection_table(arms),
        "",
        *note,
        "## Search grid",
        "",
        "The settings each strategy tried, with the validation accuracy selection compared.",
        "",
        *tables.grid_table(arms),
        "",
    ]


def _run_sections(root: Path, failed: list[Run], unfinished: list[Run]) -> list[str]:
    lines: list[str] = []
    if failed:
        lines += ["## Failed runs", "", "| run | status | what | error |", "|---|---|---|---|"]
        lines += [tables.run_line(r, root) for r in failed]
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
        lines += [tables.run_line(r, root) for r in unfinished]
        lines.append("")
    return lines
