"""The report's tables: markdown for report.md and rows for report.csv.

- *Selected settings*: one row per arm (data, model, strategy, label budget) at the setting it
  selected on validation, with that setting's test accuracy, its cost and the search's cost
  (measured as tlbench.report.costs says: median epoch x epochs, one-offs named and once).
- *Search grid*: every setting an arm tried with its val accuracy (what selection saw).
- *All configurations*: one row per configuration (mean ± std over seeds), as report.csv.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from tlbench.report import costs, health
from tlbench.report import format as fmt
from tlbench.report.groups import Group
from tlbench.report.runs import UNFINISHED, Run
from tlbench.report.selection import Arm

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
    "n_collapsed",  # finished runs > 2 points below their best after a switch or at the end
    "seeds",
    "best_val_acc_mean",
    "best_val_acc_std",
    "test_acc_mean",
    "test_acc_std",
    "final_val_acc_mean",
    "final_val_acc_std",
    "fit_seconds_mean",
    "fit_seconds_std",
    "fit_seconds_estimated",  # true: a run's fit time is partly recovered from metrics.csv
    "cost_seconds_mean",  # per run: median epoch time x epochs + its own one-offs (costs.py)
    "cost_seconds_std",
    "one_off_costs",  # shared one-offs, once per key: "feature extraction 6.7 s, ..."
    "n_noisy_timings",  # finished runs whose epoch times vary by more than 2x
    "train_images_per_second_mean",
    "train_images_per_second_std",
    "trainable_params",
    "total_params",
    "epochs_mean",
    "run_dirs",
    # per-strategy selection (tlbench.report.selection)
    "selected",  # true: this configuration is its arm's best on mean val acc
    "settings_tried",  # configurations of its arm (data, model, strategy, budget)
    "fit_seconds_total",  # this configuration's fit seconds, every run (failed ones too)
    "search_fit_seconds",  # the whole arm's fit seconds: the cost of the search
    "search_cost_seconds",  # the whole arm's measured cost, shared one-offs once per key
)


def csv_rows(groups: list[Group], arms: list[Arm], root: Path) -> list[dict]:
    arm_of = {id(g): a for a in arms for g in a.settings}
    rows = []
    for g in groups:
        arm = arm_of.get(id(g))
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
            "n_collapsed": health.collapses(g),
            "seeds": " ".join(str(r.seed) for r in g.ok),
            "trainable_params": g.stat("trainable_params")[0],
            "total_params": g.stat("total_params")[0],
            "epochs_mean": g.stat("epochs")[0],
            "run_dirs": " ".join(fmt.rel(r.dir, root) for r in g.runs),
            "selected": arm is not None and arm.selected is g,
            "settings_tried": len(arm.settings) if arm else None,
            "fit_seconds_total": g.fit_total,
            "fit_seconds_estimated": fit_estimated(g),
            "search_fit_seconds": arm.search_seconds if arm else None,
            "search_cost_seconds": arm.search_cost if arm else None,
            "one_off_costs": costs.one_off_text(g.runs),
            "n_noisy_timings": len(costs.noisy_runs(g)),
        }
        row["cost_seconds_mean"], row["cost_seconds_std"], _ = costs.setting_cost(g)
        for metric in (
            "best_val_acc",
            "test_acc",
            "final_val_acc",
            "fit_seconds",
            "train_images_per_second",
        ):
            m, s, _ = g.stat(metric)
            row[f"{metric}_mean"], row[f"{metric}_std"] = m, s
        rows.append({k: fmt.csv_value(row.get(k)) for k in CSV_FIELDS})
    return rows


ESTIMATED_MARK = "†"
ESTIMATED_NOTE = (
    f"{ESTIMATED_MARK} Fit time partly estimated: a segment of a run was killed outright "
    "(SIGKILL, out of memory) before it could record its time, which was recovered from "
    "metrics.csv's per-epoch times; a lower bound (the killed segment's setup and unfinished "
    "epoch are not in it)."
)


def fit_estimated(g: Group) -> bool:
    return any(r.fit_estimated for r in g.runs)


def cost_estimated(g: Group) -> bool:
    """A cost resting on a partly estimated fit time (runs without per-epoch times)."""
    return any(r.fit_estimated and not costs.run_cost(r).measured for r in g.runs)


def _cost_cell(g: Group) -> str:
    """Per run: median epoch x epochs (mean ± std over seeds), with the extraction one run needs
    named; † where it rests on an estimated fit time, ⚠ where epoch times are noisy."""
    m, s, _ = costs.setting_cost(g)
    cell = fmt.seconds(m, s)
    if cell == "–":
        return cell
    if extraction := costs.extraction_per_run(g.ok):
        cell += f" (incl. {costs.EXTRACTION} {fmt.seconds(extraction)})"
    if cost_estimated(g):
        cell += f" {ESTIMATED_MARK}"
    if noisy := len(costs.noisy_runs(g)):
        cell += f" ⚠ noisy timings ({noisy}/{len(g.ok)})"
    return cell


def estimated_note(groups: list[Group]) -> list[str]:
    """The footnote for the † marks, when any run has them."""
    return [ESTIMATED_NOTE, ""] if any(cost_estimated(g) for g in groups) else []


def csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _n_cell(g: Group) -> str:
    note = [health.failed_note(g)] if health.failed(g) else []
    if g.count(*UNFINISHED):
        note.append(f"{g.count(*UNFINISHED)} unfinished")
    n = len(g.ok)
    return f"{n}" + (" (single seed)" if n == 1 else "") + (f" ({', '.join(note)})" if note else "")


def _has_final(groups: list[Group]) -> bool:
    """Old run dirs have no final_val_acc: then the column is left out."""
    return any(g.stat("final_val_acc")[0] is not None for g in groups)


def _final_cell(g: Group) -> str:
    """Final val acc, with the collapse flag ('⚠ collapsed after its switch in 2/2 seeds')."""
    note = health.collapse_note(g)
    return fmt.pct(*g.stat("final_val_acc")[:2]) + (f" ⚠ {note}" if note else "")


def results_table(groups: list[Group], selected: set[int] | None = None) -> list[str]:
    """All configurations; with `selected` (ids of selected groups) a ✓ column marks them."""
    shown = [g for g in groups if g.runs and any(r.summary for r in g.runs)]
    with_config = any(g.config for g in shown)
    head = ["data", "model", "strategy", "label budget"]
    head += ["config"] if with_config else []
    final = _has_final(shown)
    head += ["n", "best val acc", *(["final val acc"] if final else [])]
    head += ["test acc", "cost", "train img/s", "trainable params"]
    head += ["selected"] if selected is not None else []
    lines = fmt.header(head)
    for g in shown:
        cells = [g.first("data"), g.first("model"), g.strategy, g.budget]
        cells += [g.config or "–"] if with_config else []
        ips = g.stat("train_images_per_second")[0]
        cells += [
            _n_cell(g),
            fmt.pct(*g.stat("best_val_acc")[:2]),
            *([_final_cell(g)] if final else []),
            fmt.pct(*g.stat("test_acc")[:2]),
            _cost_cell(g),
            "–" if ips is None else f"{ips:,.0f}",
            fmt.count(g.stat("trainable_params")[0]),
        ]
        cells += (["✓" if id(g) in selected else ""]) if selected is not None else []
        lines.append(fmt.row(cells))
    return lines


def selection_table(arms: list[Arm]) -> list[str]:
    """One row per arm at its selected setting: what was chosen, from how many, at what cost."""
    final = _has_final([a.selected for a in arms if a.selected is not None])
    head = ["data", "model", "label budget", "strategy", "selected setting", "n", "val acc"]
    head += ["final val acc"] if final else []
    head += ["test acc", "cost (selected)", "search cost", "settings tried"]
    lines = fmt.header(head)
    for a in arms:
        g = a.selected
        if g is None:
            why = f"{a.n_failed} failed" if a.n_failed else "no finished run"
            cells = [*a.key[:2], a.budget, a.strategy, f"none ({why})"]
            lines.append(fmt.row(cells + ["–"] * (len(head) - len(cells))))
            continue
        lines.append(
            fmt.row(
                [
                    *a.key[:2],
                    a.budget,
                    a.strategy,
                    g.config or "(the only one)",
                    _n_cell(g),
                    fmt.pct(*g.stat("best_val_acc")[:2]),
                    *([_final_cell(g)] if final else []),
                    fmt.pct(*g.stat("test_acc")[:2]),
                    _cost_cell(g),
                    _search_cell(a),
                    len(a.settings),
                ]
            )
        )
    return lines


def _search_cell(a: Arm) -> str:
    """'95 s over 9 runs (incl. feature extraction 20 s)': shared one-offs once per key."""
    cell = f"{fmt.seconds(a.search_cost)} over {a.n_runs} run{'s' if a.n_runs != 1 else ''}"
    runs = [r for g in a.settings for r in g.runs]
    if one_offs := costs.one_off_text(runs):
        cell += f" (incl. {one_offs})"
    return cell + (f" {ESTIMATED_MARK}" if any(map(cost_estimated, a.settings)) else "")


def grid_table(arms: list[Arm]) -> list[str]:
    """Every setting each arm tried, with the val accuracy selection compared (no test acc:
    it played no part in the choice)."""
    final = _has_final([g for a in arms for g in a.settings])
    head = ["label budget", "strategy", "setting", "n", "val acc (mean ± std)"]
    head += ["final val acc"] if final else []
    lines = fmt.header([*head, "cost", "selected"])
    for a in arms:
        if len(a.settings) < 2:
            continue
        for g in sorted(a.settings, key=lambda g: g.config):
            lines.append(
                fmt.row(
                    [
                        a.budget,
                        a.strategy,
                        g.config or "–",
                        _n_cell(g),
                        fmt.pct(*g.stat("best_val_acc")[:2]),
                        *([_final_cell(g)] if final else []),
                        _cost_cell(g),
                        "✓" if g is a.selected else "",
                    ]
                )
            )
    return lines


def run_line(run: Run, root: Path) -> str:
    what = " ".join(
        f"{k}={run.get(k)}" for k in ("model", "strategy", "data", "seed") if run.get(k) is not None
    )
    if not what and run.overrides:
        what = " ".join(f"{k}={v}" for k, v in run.overrides.items())
    return fmt.row([f"`{fmt.rel(run.dir, root)}`", run.status, what or "–", fmt.short(run.error)])
