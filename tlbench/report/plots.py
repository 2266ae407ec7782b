"""The report's PNG plots, each with a one-line reading computed from the same numbers.

Uses matplotlib's object API on an Agg canvas (no pyplot): no display needed, and the caller's
global backend (a notebook's, say) is left alone. Every plot is optional: a plot that has nothing
to show, or fails, becomes a sentence in the report rather than an exception.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from pathlib import Path

from tlbench.report.tables import STRATEGY_ORDER, Group, mean_std, pct, score_metric

log = logging.getLogger("tlbench.report")

COST_PNG, CURVES_PNG, EFFICIENCY_PNG = (
    "report_cost.png",
    "report_curves.png",
    "report_efficiency.png",
)
# Fixed colours per strategy so every plot (and every report) reads the same way.
COLORS = {"transfer": "tab:blue", "finetune": "tab:orange", "scratch": "tab:green"}
OTHER_COLORS = ("tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")
LINESTYLES = ("-", "--", ":", "-.")


def color(strategy: str, strategies: list[str]) -> str:
    if strategy in COLORS:
        return COLORS[strategy]
    others = [s for s in strategies if s not in COLORS]
    return OTHER_COLORS[others.index(strategy) % len(OTHER_COLORS)] if strategy in others else "k"


def strategies_of(groups: list[Group]) -> list[str]:
    seen = {g.strategy for g in groups}
    return [s for s in STRATEGY_ORDER if s in seen] + sorted(seen - set(STRATEGY_ORDER))


def _figure(width=7.0, height=4.5, ncols=1, nrows=1, sharey=False):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, sharey=sharey, squeeze=False)
    return fig, axes


def _save(fig, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=100)
    tmp.replace(path)


def make_all(groups: list[Group], root: Path) -> list[list[str]]:
    """Every plot that applies; returns report.md sections (heading, image link, reading)."""
    sections = []
    for title, make in (
        ("Accuracy vs cost", cost_plot),
        ("Validation accuracy per epoch", curves_plot),
        ("Data efficiency", efficiency_plot),
    ):
        try:
            section = make(groups, root)
        except Exception as exc:  # a plot must never cost the tables
            log.warning("report: the %r plot failed: %s: %s", title, type(exc).__name__, exc)
            section = [f"*Plot not drawn: {type(exc).__name__}: {exc}*"]
        if section:
            sections.append([f"## {title}", "", *section])
    return sections


def _line_label(g: Group, groups: list[Group], with_budget: bool) -> str:
    """Strategy, plus whichever of model / data / budget / config vary in this report."""
    parts = [g.strategy]
    for name in ("model", "data"):
        if len({x.first(name) for x in groups} - {None}) > 1:
            parts.append(str(g.first(name)))
    if with_budget and len({x.budget for x in groups}) > 1:
        parts.append(g.budget)
    if g.config:
        parts.append(g.config)
    return " · ".join(parts)


# ------------------------------------------------------------------------- accuracy vs fit time


def cost_plot(groups: list[Group], root: Path) -> list[str]:
    metric, metric_name = score_metric(groups)
    points = [
        (g, g.stat(metric), g.stat("fit_seconds"))
        for g in groups
        if g.stat(metric)[0] is not None and g.stat("fit_seconds")[0] is not None
    ]
    if not points:
        return ["No finished run with both an accuracy and a fit time: nothing to plot."]
    strategies = strategies_of(groups)
    fig, axes = _figure()
    ax = axes[0][0]
    labelled = set()
    for g, (m, s, _), (t, ts, _) in points:
        strat = g.strategy
        ax.errorbar(
            t,
            100 * m,
            xerr=ts or None,
            yerr=100 * s if s else None,
            fmt="o",
            color=color(strat, strategies),
            label=None if strat in labelled else strat,
            capsize=3,
            markersize=7,
        )
        labelled.add(strat)
        if len(points) <= 24:
            ax.annotate(
                _line_label(g, groups, True).removeprefix(strat).strip(" ·") or strat,
                (t, 100 * m),
                textcoords="offset points",
                xytext=(5, 4),
                fontsize=7,
            )
    times = [t for _, _, (t, _, _) in points if t > 0]
    if times and max(times) / min(times) > 10:
        ax.set_xscale("log")
    ax.set_xlabel("fit time (s, mean over seeds)")
    ax.set_ylabel(f"{metric_name} (%)")
    ax.set_title("Accuracy vs training cost (error bars: std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(title="strategy", fontsize=8)
    _save(fig, root / COST_PNG)
    return [f"![{metric_name} vs fit time]({COST_PNG})", "", "Reading: " + cost_reading(groups)]


def cost_reading(groups: list[Group]) -> str:
    metric, _ = score_metric(groups)
    done = [g for g in groups if g.stat(metric)[0] is not None and g.stat("fit_seconds")[0]]
    if not done:
        return "no finished configuration to compare."
    best = max(done, key=lambda g: g.stat(metric)[0])
    text = (
        f"most accurate: {_line_label(best, groups, True)} at {pct(best.stat(metric)[0])} "
        f"in {best.stat('fit_seconds')[0]:.0f} s."
    )
    by_strategy = defaultdict(list)
    for g in done:
        by_strategy[g.strategy].append(g)
    if len(by_strategy) < 2:
        return text + f" Only one strategy ({best.strategy}) finished: no cost comparison."
    # Compare strategies on matching configurations only (same data/model/budget/config).
    cheapest = min(
        by_strategy,
        key=lambda s: sorted(g.stat("fit_seconds")[0] for g in by_strategy[s])[
            len(by_strategy[s]) // 2
        ],
    )
    ref = {_match_key(g): g for g in by_strategy[cheapest]}
    parts = []
    for strat, gs in by_strategy.items():
        if strat == cheapest:
            continue
        pairs = [(g, ref[_match_key(g)]) for g in gs if _match_key(g) in ref]
        if not pairs:
            continue
        ratio = mean_std(g.stat("fit_seconds")[0] / r.stat("fit_seconds")[0] for g, r in pairs)[0]
        gain = mean_std(100 * (g.stat(metric)[0] - r.stat(metric)[0]) for g, r in pairs)[0]
        parts.append(
            f"{strat} costs {ratio:.1f}x the fit time of {cheapest} for {gain:+.1f} points "
            f"(mean over {len(pairs)} matching configuration{'s' if len(pairs) > 1 else ''})"
        )
    return text + (" " + "; ".join(parts) + "." if parts else "")


def _match_key(g: Group) -> tuple:
    return (str(g.first("data")), str(g.first("model")), g.budget, g.config)


# ------------------------------------------------------------------------ validation curves


def mean_curve(g: Group) -> tuple[list[int], list[float], list[float | None]]:
    """Per epoch: mean and std of val/acc over the finished seeds that reached that epoch."""
    by_epoch = defaultdict(list)
    for run in g.ok:
        for epoch, acc in run.curve:
            by_epoch[epoch].append(acc)
    epochs = sorted(by_epoch)
    stats = [mean_std(by_epoch[e]) for e in epochs]
    return epochs, [m for m, _, _ in stats], [s for _, s, _ in stats]


def curves_plot(groups: list[Group], root: Path) -> list[str]:
    from matplotlib.ticker import MaxNLocator

    curves = [(g, *mean_curve(g)) for g in groups]
    curves = [c for c in curves if c[1]]
    if not curves:
        return ["No metrics.csv with validation accuracy found: no curves to plot."]
    strategies = [s for s in strategies_of(groups) if any(c[0].strategy == s for c in curves)]
    ncols = min(len(strategies), 3)
    nrows = math.ceil(len(strategies) / ncols)
    fig, axes = _figure(
        width=3.6 * ncols + 0.6, height=3.2 * nrows, ncols=ncols, nrows=nrows, sharey=True
    )
    for i, strat in enumerate(strategies):
        ax = axes[i // ncols][i % ncols]
        mine = [c for c in curves if c[0].strategy == strat]
        cmap_values = [0.35 + 0.65 * k / max(len(mine) - 1, 1) for k in range(len(mine))]
        for (g, epochs, means, stds), shade in zip(mine, cmap_values, strict=True):
            base = color(strat, strategies)
            label = _line_label(g, groups, True).removeprefix(strat).strip(" ·") or strat
            ys = [100 * m for m in means]
            ax.plot(epochs, ys, marker="o", markersize=3, color=base, alpha=shade, label=label)
            if any(s is not None for s in stds):
                lo = [y - 100 * (s or 0) for y, s in zip(ys, stds, strict=True)]
                hi = [y + 100 * (s or 0) for y, s in zip(ys, stds, strict=True)]
                ax.fill_between(epochs, lo, hi, color=base, alpha=0.12 * shade)
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
    return [
        f"![validation accuracy curves]({CURVES_PNG})",
        "",
        "Reading: " + curves_reading(curves),
    ]


def curves_reading(curves) -> str:
    parts = []
    by_strategy = defaultdict(list)
    for g, epochs, means, _ in curves:
        by_strategy[g.strategy].append((epochs, means))
    for strat in [s for s in STRATEGY_ORDER if s in by_strategy] + sorted(
        set(by_strategy) - set(STRATEGY_ORDER)
    ):
        items = by_strategy[strat]
        peaks = [epochs[means.index(max(means))] for epochs, means in items]
        last = [epochs[-1] for epochs, _ in items]
        # "Still rising": the best epoch is the last one and it beats the first epoch.
        rising = sum(
            means.index(max(means)) == len(means) - 1 and len(means) > 1 and means[-1] > means[0]
            for _, means in items
        )
        text = f"{strat} peaks at epoch {sum(peaks) / len(peaks):.1f} on average (of {max(last)})"
        if rising:
            text += f", still rising at the last epoch in {rising}/{len(items)} configurations"
        parts.append(text)
    return (
        "; ".join(parts)
        + "."
        + (
            " Curves still rising suggest more epochs would pay off."
            if any("still rising" in p for p in parts)
            else ""
        )
    )


# ------------------------------------------------------------------------ data efficiency


def efficiency_plot(groups: list[Group], root: Path) -> list[str]:
    """Only when the label budget varies: accuracy vs labels per class, one line per strategy."""
    metric, metric_name = score_metric(groups)
    done = [g for g in groups if g.stat(metric)[0] is not None and g.labels_per_class]
    if len({g.labels_per_class for g in done}) < 2:
        return []  # the budget does not vary: no section at all
    lines = defaultdict(list)
    for g in done:
        lines[_line_label(g, groups, False)].append(g)
    strategies = strategies_of(groups)
    fig, axes = _figure()
    ax = axes[0][0]
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
        ax.fill_between(
            xs,
            [m - s for m, s in zip(ms, ss, strict=True)],
            [m + s for m, s in zip(ms, ss, strict=True)],
            color=c,
            alpha=0.12,
        )
    xs_all = sorted({g.labels_per_class for g in done})
    if xs_all[0] > 0 and xs_all[-1] / xs_all[0] > 4:
        ax.set_xscale("log")
        ax.set_xticks(xs_all, [f"{x:g}" for x in xs_all])
        ax.minorticks_off()
    ax.set_xlabel("labelled training images per class")
    ax.set_ylabel(f"{metric_name} (%)")
    ax.set_title("Data efficiency (mean over seeds, bars/band: ± std)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, root / EFFICIENCY_PNG)
    return [
        f"![{metric_name} vs labels per class]({EFFICIENCY_PNG})",
        "",
        "Reading: " + efficiency_reading(done, groups, metric),
    ]


def efficiency_reading(done: list[Group], groups: list[Group], metric: str) -> str:
    """Per label budget: the best line, the runner-up and whether the gap exceeds the seed spread."""
    by_budget = defaultdict(list)
    for g in done:
        by_budget[(g.labels_per_class, g.budget)].append(g)
    parts = []
    for (_, budget), gs in sorted(by_budget.items()):
        gs = sorted(gs, key=lambda g: -g.stat(metric)[0])
        best = gs[0]
        text = f"{budget}: {_line_label(best, groups, False)} best at {pct(best.stat(metric)[0])}"
        if len(gs) > 1:
            second = gs[1]
            gap = best.stat(metric)[0] - second.stat(metric)[0]
            spread = max((g.stat(metric)[1] or 0) for g in (best, second))
            text += f", {100 * gap:.1f} points ahead of {_line_label(second, groups, False)}" + (
                " (within the seed spread)" if spread and gap <= spread else ""
            )
        parts.append(text)
    return "; ".join(parts) + "."
