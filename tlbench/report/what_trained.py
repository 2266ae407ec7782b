"""`## What trained`: per strategy and stage, how far the weights moved from where the run started
(summary.json's `weight_drift`, tlbench.training.callbacks.weight_drift), mean over the selected
settings' seeds, with a heat map; BatchNorm statistics that changed; and every run in which a
stage its strategy froze changed anyway (`weight_drift_warnings`). Runs written before drift was
recorded are left out, with a line saying so."""

from __future__ import annotations

import statistics

WHAT_TRAINED_PNG = "report_what_trained.png"


def _rows(arms) -> tuple[list[tuple[str, dict[str, float], set[str]]], list[str]]:
    """[(arm label, {stage: mean drift}, stages whose BN stats changed)] and warnings."""
    rows, warnings = [], []
    multi = len({(a.key[0], a.key[1], a.budget) for a in arms}) > 1
    for a in arms:
        g = a.selected
        if g is None:
            continue
        drifts = [r.get("weight_drift") for r in g.ok if isinstance(r.get("weight_drift"), dict)]
        for r in g.ok:
            for w in r.get("weight_drift_warnings") or []:
                warnings.append(f"{a.strategy} ({r.dir.name if r.dir else '?'}): {w}")
        if not drifts:
            continue
        stages = list(drifts[0])
        mean = {s: statistics.fmean(d.get(s, 0.0) for d in drifts) for s in stages}
        bn = {s for r in g.ok for s, v in (r.get("bn_stats_changed") or {}).items() if v}
        label = f"{a.strategy} · {a.budget}" if multi else a.strategy
        if any("cached features" in str(r.get("weight_drift_basis")) for r in g.ok):
            label += " (cached: frozen by construction)"
        rows.append((label, mean, bn))
    return rows, warnings


def section(arms, root, plots: bool = True) -> list[str]:
    rows, warnings = _rows(arms)
    if not rows:
        return []
    stages = list(dict.fromkeys(s for _, mean, _ in rows for s in mean))
    lines = [
        "## What trained",
        "",
        "How far each stage's weights moved from the run's start, ||w - w0|| / ||w0|| (mean over "
        "the selected setting's seeds; 0 = untouched); * = its BatchNorm running statistics "
        "changed. A stage a strategy froze must stay at 0.",
        "",
        "| strategy | " + " | ".join(stages) + " |",
        "|---|" + "---|" * len(stages),
    ]
    for label, mean, bn in rows:
        cells = [f"{mean[s]:.3g}{'*' if s in bn else ''}" if s in mean else "—" for s in stages]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    if warnings:
        lines += ["**Frozen stages that changed:**", "", *[f"- {w}" for w in warnings], ""]
    if plots:
        lines += _heat_map(rows, stages, root)
    return lines


def _heat_map(rows, stages: list[str], root) -> list[str]:
    from pathlib import Path

    from tlbench.report import plots

    try:
        fig, axes = plots._figure(width=max(5.0, 0.6 * len(stages) + 3), height=0.5 * len(rows) + 2)
        ax = axes[0][0]
        data = [[mean.get(s, float("nan")) for s in stages] for _, mean, _ in rows]
        im = ax.imshow(data, aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(stages)), stages, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(rows)), [label for label, _, _ in rows], fontsize=8)
        ax.set_title("relative weight drift per stage")
        fig.colorbar(im, ax=ax, label="||w - w0|| / ||w0||")
        plots._save(fig, Path(root) / WHAT_TRAINED_PNG)
    except Exception as exc:  # a plot must never cost the tables
        return [f"*Plot not drawn: {type(exc).__name__}: {exc}*", ""]
    return [f"![relative weight drift per stage]({WHAT_TRAINED_PNG})", ""]
