"""The report's PNG plots, each with a one-line reading (tlbench.report.readings).

Each strategy's selected setting is drawn prominently; the other settings a sweep tried are drawn
faded, so the picture shows the comparison the verdict makes and the search behind it.
Uses matplotlib's object API on an Agg canvas (no pyplot): no display needed, and the caller's
global backend (a notebook's, say) is left alone. Every plot is optional: a plot that has nothing
to show, or fails, becomes a sentence in the report rather than an exception.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from pathlib import Path

from tlbench import atomic
from tlbench.report import costs, readings
from tlbench.report.groups import Group, score_metric
from tlbench.report.selection import Arm, selected_groups

log = logging.getLogger("tlbench.report")

COST_PNG, CURVES_PNG, EFFICIENCY_PNG = (
    "report_cost.png",
    "report_curves.png",
    "report_efficiency.png",
)
# Fixed colours per strategy so every plot (and every report) reads the same way.
COLORS = {"transfer": "tab:blue", "finetune": "tab:orange", "scratch": "tab:green"}
# 12 more: a surgical sweep has one arm per stage (EfficientNet-Lite0: 8) beside the three above
OTHER_COLORS = ("tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan",
                "tab:gray", "gold", "navy", "lime", "teal", "maroon")  # fmt: skip
LINESTYLES = ("-", "--", ":", "-.")
FADED = 0.2  # alpha of the settings selection did not pick


def color(strategy: str, strategies: list[str]) -> str:
    if strategy in COLORS:
        return COLORS[strategy]
    others = [s for s in strategies if s not in COLORS]
    return OTHER_COLORS[others.index(strategy) % len(OTHER_COLORS)] if strategy in others else "k"


def _figure(width=7.0, height=4.5, ncols=1, nrows=1, sharey=False):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, sharey=sharey, squeeze=False)
    return fig, axes


def _save(fig, path: Path) -> None:
    with atomic.replacing(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)


def make_all(groups: list[Group], arms: list[Arm], root: Path) -> list[list[str]]:
    """Every plot that applies; returns report.md sections (heading, image link, reading)."""
    sections = []
    chosen = {id(g) for g in selected_groups(arms)}
    for title, make in (
        ("Accuracy vs cost", cost_plot),
        ("Validation accuracy per epoch", curves_plot),
        ("Data efficiency", efficiency_plot),
    ):
        try:
            section = make(groups, chosen, root)
        except Exception as exc:  # a plot must never cost the tables
            log.warning("report: the %r plot failed: %s: %s", title, type(exc).__name__, exc)
            section = [f"*Plot not drawn: {type(exc).__name__}: {exc}*"]
        if section:
            sections.append([f"## {title}", "", *section])
    return sections


def _faded_note(groups: list[Group], chosen: set[int]) -> str:
    others = sum(id(g) not in chosen and g.stat("best_val_acc")[0] is not None for g in groups)
    return f" Faded: the {others} settings selection did not pick." if others else ""


def cost_plot(groups: list[Group], chosen: set[int], root: Path) -> list[str]:
    metric, metric_name = score_metric(groups)
    points = [
        (g, g.stat(metric), costs.setting_cost(g))  # median epoch x epochs + one-offs
        for g in groups
        if g.stat(metric)[0] is not None and costs.setting_cost(g)[0] is not None
    ]
    if not points:
        return ["No finished run with both an accuracy and a cost: nothing to plot."]
    strategies = readings.strategies_of(groups)
    fig, axes = _figure()
    ax = axes[0][0]
    labelled: set[str] = set()
    for g, stat, time_stat in sorted(points, key=lambda p: id(p[0]) in chosen):
        _draw_point(ax, g, stat, time_stat, groups, color(g.strategy, strategies), chosen, labelled)
    times = [t for _, _, (t, _, _) in points if t > 0]
    if times and max(times) / min(times) > 10:
        ax.set_xscale("log")
    ax.set_xlabel("cost (s: median epoch x epochs + one-offs, mean over seeds)")
    ax.set_ylabel(f"{metric_name} (%)")
    ax.set_title("Accuracy vs training cost (error bars: std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(title="strategy (selected)", fontsize=8)
    _save(fig, root / COST_PNG)
    selected = [g for g in groups if id(g) in chosen]
    return [
        f"![{metric_name} vs cost]({COST_PNG})",
        "",
        "Reading: " + readings.cost_reading(selected, groups, metric) + _faded_note(groups, chosen),
    ]


def _draw_point(ax, g, stat, time_stat, groups, base, chosen, labelled: set[str]) -> None:
    """One configuration on the cost plot: selected ones large, labelled and annotated."""
    (m, s, _), (t, ts, _) = stat, time_stat
    strat, on = g.strategy, id(g) in chosen
    ax.errorbar(
        t,
        100 * m,
        xerr=ts or None,
        yerr=100 * s if s else None,
        fmt="o",
        color=base,
        alpha=1.0 if on else FADED,
        label=strat if on and strat not in labelled else None,
        capsize=3,
        markersize=8 if on else 5,
    )
    if on:
        labelled.add(strat)
        ax.annotate(
            readings.line_label(g, groups, True).removeprefix(strat).strip(" ·") or strat,
            (t, 100 * m),
            textcoords="offset points",
            xytext=(5, 4),
            fontsize=7,
        )


def _draw_curve(ax, epochs, means, stds, base: str, on: bool, label: str | None) -> None:
    ys = [100 * m for m in means]
    ax.plot(
        epochs,
        ys,
        marker="o" if on else None,
        markersize=3,
        linewidth=1.6 if on else 0.8,
        color=base,
        alpha=1.0 if on else FADED,
        label=label,
    )
    if on and any(s is not None for s in stds):
        lo = [y - 100 * (s or 0) for y, s in zip(ys, stds, strict=True)]
        hi = [y + 100 * (s or 0) for y, s in zip(ys, stds, strict=True)]
        ax.fill_between(epochs, lo, hi, color=base, alpha=0.12)


def curves_plot(groups: list[Group], chosen: set[int], root: Path) -> list[str]:
    from matplotlib.ticker import MaxNLocator

    curves = [c for c in ((g, *readings.mean_curve(g)) for g in groups) if c[1]]
    if not curves:
        return ["No metrics.csv with validation accuracy found: no curves to plot."]
    strategies = [
        s for s in readings.strategies_of(groups) if any(c[0].strategy == s for c in curves)
    ]
    ncols = min(len(strategies), 3)
    nrows = math.ceil(len(strategies) / ncols)
    fig, axes = _figure(
        width=3.6 * ncols + 0.6, height=3.2 * nrows, ncols=ncols, nrows=nrows, sharey=True
    )
    for i, strat in enumerate(strategies):
        ax = axes[i // ncols][i % ncols]
        mine = sorted(
            (c for c in curves if c[0].strategy == strat), key=lambda c: id(c[0]) in chosen
        )
        for g, epochs, means, stds in mine:
            on = id(g) in chosen
            label = readings.line_label(g, groups, True).removeprefix(strat).strip(" ·") or strat
            _draw_curve(
                ax, epochs, means, stds, color(strat, strategies), on, label if on else None
            )
        ax.set_title(strat)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if len(mine) > 1 or mine[0][0].config or len({c[0].budget for c in curves}) > 1:
            ax.legend(fontsize=7)
    for j in range(len(strategies), nrows * ncols):
        axes[j // ncols][j % ncols].set_visible(False)
    for row in axes:
        row[0].set_ylabel("val accuracy (%)")
    fig.suptitle("Validation accuracy per epoch (mean over seeds, band: ± std)")
    _save(fig, root / CURVES_PNG)
    picked = [c for c in curves if id(c[0]) in chosen] or curves
    return [
        f"![validation accuracy curves]({CURVES_PNG})",
        "",
        "Reading: " + readings.curves_reading(picked) + _faded_note(groups, chosen),
    ]


def _mark_crossovers(ax, selected: list[Group], metric: str) -> None:
    """A dotted line where the winner changes between two budgets (tlbench.report.crossover)."""
    from tlbench.report import crossover

    arms = [Arm(key=g.arm, settings=[g], selected=g) for g in selected]
    for c in crossover.find(arms, metric):
        ax.axvline(c.at, linestyle=":", color="0.4", linewidth=1)
        ax.annotate(f"{c.rising} > {c.falling}", (c.at, 0.02), xycoords=("data", "axes fraction"),
                    rotation=90, fontsize=7, color="0.3")  # fmt: skip


def efficiency_plot(groups: list[Group], chosen: set[int], root: Path) -> list[str]:
    """Only when the label budget varies: accuracy vs labels per class, one line per strategy
    through its selected settings, the other settings as faded points."""
    metric, metric_name = score_metric(groups)
    done = [g for g in groups if g.stat(metric)[0] is not None and g.labels_per_class]
    if len({g.labels_per_class for g in done}) < 2:
        return []  # the budget does not vary: no section at all
    lines = defaultdict(list)
    for g in done:
        if id(g) in chosen:
            lines[readings.line_label(g, groups, False, with_config=False)].append(g)
    strategies = readings.strategies_of(groups)
    fig, axes = _figure()
    ax = axes[0][0]
    for g in done:
        if id(g) not in chosen:
            c = color(g.strategy, strategies)
            ax.plot(g.labels_per_class, 100 * g.stat(metric)[0], "o", color=c, alpha=FADED)
    styles: dict[str, int] = defaultdict(int)
    for label, gs in lines.items():
        gs = sorted(gs, key=lambda g: g.labels_per_class)
        xs = [g.labels_per_class for g in gs]
        ms = [100 * g.stat(metric)[0] for g in gs]
        ss = [100 * (g.stat(metric)[1] or 0) for g in gs]
        strat = gs[0].strategy
        style = LINESTYLES[styles[strat] % len(LINESTYLES)]
        styles[strat] += 1
        c = color(strat, strategies)
        ax.errorbar(xs, ms, yerr=ss, fmt="o" + style, color=c, capsize=3, label=label)
        lo = [m - s for m, s in zip(ms, ss, strict=True)]
        ax.fill_between(xs, lo, [m + s for m, s in zip(ms, ss, strict=True)], color=c, alpha=0.12)
    _mark_crossovers(ax, [g for g in done if id(g) in chosen], metric)
    xs_all = sorted({g.labels_per_class for g in done})
    if xs_all[0] > 0 and xs_all[-1] / xs_all[0] > 4:
        ax.set_xscale("log")
        ax.set_xticks(xs_all, [f"{x:g}" for x in xs_all])
        ax.minorticks_off()
    ax.set_xlabel("labelled training images per class")
    ax.set_ylabel(f"{metric_name} (%)")
    ax.set_title("Data efficiency (selected settings, mean over seeds, band: ± std)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, root / EFFICIENCY_PNG)
    picked = [g for g in done if id(g) in chosen]
    return [
        f"![{metric_name} vs labels per class]({EFFICIENCY_PNG})",
        "",
        "Reading: "
        + readings.efficiency_reading(picked, groups, metric)
        + _faded_note(groups, chosen),
    ]
