"""The one-line readings under each plot, computed from the same numbers the plots draw (the
selected setting of each strategy). Text only: no matplotlib here."""

from __future__ import annotations

from collections import defaultdict

from tlbench.report import costs, health, paired
from tlbench.report.format import pct
from tlbench.report.groups import Group, mean_std, strategy_rank


def strategies_of(groups: list[Group]) -> list[str]:
    seen = {g.strategy for g in groups}
    return sorted(seen, key=lambda s: (strategy_rank(s), s))


def line_label(g: Group, groups: list[Group], with_budget: bool, with_config=True) -> str:
    """Strategy, plus whichever of model / data / budget / config vary in this report."""
    parts = [g.strategy]
    for name in ("model", "data"):
        if len({x.first(name) for x in groups} - {None}) > 1:
            parts.append(str(g.first(name)))
    if with_budget and len({x.budget for x in groups}) > 1:
        parts.append(g.budget)
    if with_config and g.config:
        parts.append(g.config)
    return " · ".join(parts)


def cost_reading(selected: list[Group], groups: list[Group], metric: str) -> str:
    """Costs as tlbench.report.costs measures them (median epoch x epochs, one-offs once)."""

    def cost(g: Group) -> float | None:
        return costs.setting_cost(g)[0]

    done = [g for g in selected if g.stat(metric)[0] is not None and cost(g)]
    if not done:
        return "no finished configuration to compare."
    best = max(done, key=lambda g: g.stat(metric)[0])
    text = (
        f"most accurate: {line_label(best, groups, True)} at {pct(best.stat(metric)[0])} "
        f"for {cost(best):.0f} s."
    )
    by_strategy = defaultdict(list)
    for g in done:
        by_strategy[g.strategy].append(g)
    if len(by_strategy) < 2:
        return text + f" Only one strategy ({best.strategy}) finished: no cost comparison."
    # Compare strategies on matching cells only (same data/model/budget), at their selected
    # settings; the reference is the strategy with the lowest median cost.
    cheapest = min(
        by_strategy,
        key=lambda s: sorted(cost(g) for g in by_strategy[s])[len(by_strategy[s]) // 2],
    )
    ref = {g.cell: g for g in by_strategy[cheapest]}
    parts = []
    for strat, gs in by_strategy.items():
        pairs = [(g, ref[g.cell]) for g in gs if g.cell in ref]
        if strat == cheapest or not pairs:
            continue
        ratio = mean_std(cost(g) / cost(r) for g, r in pairs)[0]
        gain = mean_std(100 * (g.stat(metric)[0] - r.stat(metric)[0]) for g, r in pairs)[0]
        gain = round(gain, 1) + 0.0  # never "-0.0 points"
        parts.append(
            f"{strat} costs {ratio:.1f}x what {cheapest} costs, for {gain:+.1f} points "
            f"(mean over {len(pairs)} matching configuration{'s' if len(pairs) > 1 else ''})"
        )
    return text + (" " + "; ".join(parts) + "." if parts else "")


def mean_curve(g: Group) -> tuple[list[int], list[float], list[float | None]]:
    """Per epoch: mean and std of val/acc over the finished seeds that reached that epoch."""
    by_epoch = defaultdict(list)
    for run in g.ok:
        for epoch, acc in run.curve:
            by_epoch[epoch].append(acc)
    epochs = sorted(by_epoch)
    stats = [mean_std(by_epoch[e]) for e in epochs]
    return epochs, [m for m, _, _ in stats], [s for _, s, _ in stats]


def curves_reading(curves) -> str:
    """`curves`: (group, epochs, means, stds) of the selected settings."""
    parts = []
    by_strategy = defaultdict(list)
    for g, epochs, means, _ in curves:
        by_strategy[g.strategy].append((epochs, means))
    for strat in sorted(by_strategy, key=strategy_rank):
        items = by_strategy[strat]
        peaks = [epochs[means.index(max(means))] for epochs, means in items]
        last = [epochs[-1] for epochs, _ in items]
        rising = sum(health.rising(means) for _, means in items)  # the verdict's rule too
        level = sum(p == e[-1] for p, (e, _) in zip(peaks, items, strict=True)) - rising
        text = f"{strat} peaks at epoch {sum(peaks) / len(peaks):.1f} on average (of {max(last)})"
        if rising:
            text += f", still rising at the last epoch in {rising}/{len(items)} configurations"
        if level:  # best at the end by a hair: no more epochs needed, but say why it is no warning
            text += (
                f", best at the last epoch but level (under {100 * health.RISING_GAIN:g} points"
                f" above the epochs before the last quarter) in {level}/{len(items)} configurations"
            )
        parts.append(text)
    tail = (
        " Curves still rising suggest more epochs would pay off."
        if any("still rising" in p for p in parts)
        else ""
    )
    return "; ".join(parts) + "." + tail


def efficiency_reading(done: list[Group], groups: list[Group], metric: str) -> str:
    """Per label budget: the best selected strategy, the runner-up and the gap vs the spread."""
    by_budget = defaultdict(list)
    for g in done:
        by_budget[(g.labels_per_class, g.budget)].append(g)
    parts = []
    for (_, budget), gs in sorted(by_budget.items()):
        gs = sorted(gs, key=lambda g: -g.stat(metric)[0])
        best = gs[0]
        label = line_label(best, groups, False, with_config=False)
        text = f"{budget}: {label} best at {pct(best.stat(metric)[0])}"
        if len(gs) > 1:
            second = gs[1]
            gap = best.stat(metric)[0] - second.stat(metric)[0]
            other = line_label(second, groups, False, with_config=False)
            test = paired.compare(best.by_seed(metric), second.by_seed(metric))  # the verdict's
            text += f", {100 * gap:.1f} points ahead of {other}" + (
                f" (not distinguishable: {test.method}, p {paired.p_text(test.p)})"
                if test is not None and not test.significant
                else ""
            )
        parts.append(text)
    return "; ".join(parts) + "."
