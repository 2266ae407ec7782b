"""How much tuning each strategy needs: expected best validation accuracy after k trials.

Dodge et al. (EMNLP 2019, "Show Your Work"), with the n settings an arm tried as the population:
E[max_k] = sum_i v_(i) * ((i/n)^k - ((i-1)/n)^k), v sorted ascending. Also the expected test
accuracy of the setting selected on validation and the expected cost, k x one setting's cost.
Details: docs/architecture.md, "Costs and the verdict".
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from tlbench.report.groups import Group


def expected_max(values: list[float], k: int) -> float:
    """Expected maximum of k draws with replacement from `values` (closed form, see above)."""
    v, n = sorted(values), len(values)
    return sum(x * ((i / n) ** k - ((i - 1) / n) ** k) for i, x in enumerate(v, 1))


def expected_at_max(keys: list[float], payload: list[float], k: int) -> float:
    """Expected `payload` of the element with the largest key among k draws with replacement;
    ties in `keys` share their probability equally (no preference between equal settings)."""
    n = len(keys)
    order = sorted(range(n), key=lambda i: keys[i])
    total, i = 0.0, 0
    while i < n:
        j = i
        while j + 1 < n and keys[order[j + 1]] == keys[order[i]]:
            j += 1
        p = ((j + 1) / n) ** k - (i / n) ** k  # the max of k draws falls in this tie block
        total += p * statistics.fmean(payload[order[m]] for m in range(i, j + 1))
        i = j + 1
    return total


@dataclass
class Curve:
    """One arm's tuning curve, k = 1 .. n (settings tried with a finished val accuracy)."""

    strategy: str
    budget: str
    n: int
    val: list[float]  # expected best val acc after k trials
    band: list[float]  # std over seeds of the per-seed curves (0 with one seed)
    test: list[float | None]  # expected test acc of the setting selected on val
    seconds: list[float]  # expected cumulative cost


def _setting_cost(g: Group) -> float:
    """One trial: every run of the setting, each at its measured cost (tlbench.report.costs),
    without the one-offs it shares with the arm's other settings (counted once, see `curve`)."""
    from tlbench.report import costs

    return sum(costs.run_cost(r).total or 0.0 for r in g.runs)


def curve(strategy: str, budget: str, settings: list[Group], cost=None) -> Curve | None:
    """The arm's curve from its settings (Groups); None with no finished setting. `cost(group)`
    is one setting's cost (default: its runs' measured cost); the one-offs the arm's runs share
    (feature extraction per cache key) are added once."""
    usable = [g for g in settings if g.stat("best_val_acc")[0] is not None]
    if not usable:
        return None
    vals = [g.stat("best_val_acc")[0] for g in usable]
    tests = [g.stat("test_acc")[0] for g in usable]
    costs = [(cost or _setting_cost)(g) or 0.0 for g in usable]
    shared = 0.0 if cost else _shared(settings)
    n = len(usable)
    seeds = sorted({s for g in usable for s in g.by_seed("best_val_acc")}, key=str)
    per_seed = [
        [g.by_seed("best_val_acc")[s] for g in usable if s in g.by_seed("best_val_acc")]
        for s in seeds
    ]
    per_seed = [v for v in per_seed if v]
    ks = range(1, n + 1)
    band = [
        statistics.stdev(expected_max(v, k) for v in per_seed) if len(per_seed) > 1 else 0.0
        for k in ks
    ]
    test = (
        [expected_at_max(vals, tests, k) for k in ks] if all(t is not None for t in tests) else []
    )
    return Curve(
        strategy,
        budget,
        n,
        val=[expected_max(vals, k) for k in ks],
        band=band,
        test=test or [None] * n,
        seconds=[shared + k * statistics.fmean(costs) for k in ks],
    )


def _shared(settings: list[Group]) -> float:
    from tlbench.report import costs

    return sum(costs.one_offs(r for g in settings for r in g.runs).values())


def leaders(curves: list[Curve]) -> list[tuple[int, str]]:
    """(k, leading strategy) for k = 1 .. the largest n among `curves` (each curve counts up to
    its own n: trials it never had are not extrapolated)."""
    out = []
    for k in range(1, max(c.n for c in curves) + 1):
        have = [c for c in curves if c.n >= k]
        best = max(have, key=lambda c: c.val[k - 1])
        out.append((k, best.strategy))
    return out


def sentence(budget: str, curves: list[Curve]) -> str:
    """One computed sentence: who is ahead at which number of trials."""
    if len(curves) < 2:
        return f"{budget}: only {curves[0].strategy} has finished settings." if curves else ""
    lead = leaders(curves)
    first = lead[0][1]
    changes = [(k, s) for (k, s), (_, prev) in zip(lead[1:], lead, strict=False) if s != prev]
    if not changes:
        return f"{budget}: {first} is ahead at every number of trials (1-{lead[-1][0]})."
    steps = ", ".join(f"{s} from {k} trials" for k, s in changes)
    return f"{budget}: {first} is ahead with 1 trial; then {steps} (the winner depends on tuning)."


def unequal(curves: list[Curve]) -> str | None:
    """A note when the strategies of one budget tried different numbers of settings."""
    ns = {c.strategy: c.n for c in curves}
    if len(set(ns.values())) <= 1:
        return None
    shown = ", ".join(f"{s} {n}" for s, n in sorted(ns.items()))
    return (
        f"searched unequally ({shown} settings): the comparison favours the strategy searched "
        "more; compare them at the same number of trials in the tuning table"
    )


def _fmt(x) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def table(curves: list[Curve]) -> list[str]:
    """Arm x k: expected best val (± band), then the expected test of the selected setting."""
    n_max = max(c.n for c in curves)
    head = " | ".join(f"k={k}" for k in range(1, n_max + 1))
    lines = [f"| label budget | strategy | {head} |", "|---|---|" + "---|" * n_max]
    for c in curves:
        cells = [
            f"{_fmt(c.val[k])} ± {100 * c.band[k]:.1f} (test {_fmt(c.test[k])}, "
            f"{c.seconds[k]:.0f} s)"
            if k < c.n
            else "—"
            for k in range(n_max)
        ]
        lines.append(f"| {c.budget} | {c.strategy} | " + " | ".join(cells) + " |")
    return lines


TUNING_PNG = "report_tuning.png"


def curves_of(arms) -> dict[str, list[Curve]]:
    """{label budget: the curves of its arms} (the arms' strategy names carry the model when a
    sweep compares several models)."""
    models = {a.key[1] for a in arms}
    out: dict[str, list[Curve]] = {}
    for a in arms:
        name = a.strategy if len(models) == 1 else f"{a.strategy} · {a.key[1]}"
        c = curve(name, a.budget, a.settings)
        if c is not None:
            out.setdefault(a.budget, []).append(c)
    return out


def section(arms, root, plots: bool = True) -> list[str]:
    """`## Tuning budget`: the table, one sentence per budget, notes on unequal search, and the
    plot; [] when no arm tried more than one setting (there is no tuning to show)."""
    by_budget = curves_of(arms)
    if not any(c.n > 1 for cs in by_budget.values() for c in cs):
        return []
    lines = [
        "## Tuning budget",
        "",
        "Expected best validation accuracy after k trials drawn from the settings each strategy "
        "tried (Dodge et al. 2019, closed form; ± the spread of the same curve per seed), the "
        "expected test accuracy of the setting selected on validation, and the expected cost "
        "of k trials (each trial = one setting, all its seeds). A strategy that is best only "
        "after many trials needs that tuning on new data too.",
        "",
    ]
    for budget, cs in by_budget.items():
        lines.append(f"- {sentence(budget, cs)}")
        if note := unequal(cs):
            lines.append(f"  Note: {budget} {note}.")
    lines += ["", *table([c for cs in by_budget.values() for c in cs]), ""]
    if plots:
        lines += _plot_lines(by_budget, root)
    return lines


def verdict_notes(arms) -> list[str]:
    """What the verdict must say about tuning: a winner that depends on the number of trials,
    and strategies searched unequally."""
    notes = []
    for budget, cs in curves_of(arms).items():
        if len(cs) > 1 and len({s for _, s in leaders(cs)}) > 1:
            notes.append(sentence(budget, cs))
        if note := unequal(cs):
            notes.append(f"{budget}: {note}.")
    return notes


def _plot_lines(by_budget: dict[str, list[Curve]], root) -> list[str]:
    from pathlib import Path

    try:
        draw(by_budget, Path(root) / TUNING_PNG)
    except Exception as exc:  # a plot must never cost the tables
        return [f"*Plot not drawn: {type(exc).__name__}: {exc}*", ""]
    return [f"![expected best validation accuracy after k trials]({TUNING_PNG})", ""]


def draw(by_budget: dict[str, list[Curve]], path):
    """One panel per label budget, a line per strategy (band: per-seed spread); dotted, on the
    right axis: the expected cumulative cost of k trials. Colour = strategy; when several models
    share a strategy, each gets its own marker. One legend under the panels."""
    from matplotlib.ticker import MaxNLocator

    from tlbench.report import plots

    bases = sorted({c.strategy.split(" · ")[0] for cs in by_budget.values() for c in cs})
    markers: dict[str, str] = {}
    for name in sorted({c.strategy for cs in by_budget.values() for c in cs}):
        same = sum(m.split(" · ")[0] == name.split(" · ")[0] for m in markers)
        markers[name] = "os^Dv"[same % 5]
    fig, axes = plots._figure(width=4.2 * len(by_budget), height=4.4, ncols=len(by_budget))
    handles: dict[str, object] = {}
    for ax, (budget, cs) in zip(axes[0], by_budget.items(), strict=True):
        cost_ax = ax.twinx()
        for c in cs:
            ks = list(range(1, c.n + 1))
            col = plots.color(c.strategy.split(" · ")[0], bases)
            val = [100 * v for v in c.val]
            (handles[c.strategy],) = ax.plot(ks, val, marker=markers[c.strategy], color=col)
            lo = [v - 100 * b for v, b in zip(val, c.band, strict=True)]
            hi = [v + 100 * b for v, b in zip(val, c.band, strict=True)]
            ax.fill_between(ks, lo, hi, color=col, alpha=0.15)
            cost_ax.plot(ks, c.seconds, linestyle=":", color=col, marker=markers[c.strategy],
                         markersize=3)  # fmt: skip
        ax.set_title(f"{budget}")
        ax.set_xlabel("trials k (settings drawn)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("expected best val acc (%)")
        cost_ax.set_ylabel("expected cost of k trials (s, dotted)")
        ax.grid(alpha=0.3)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center",
               ncols=min(len(handles), 4), fontsize=8)  # fmt: skip
    plots._save(fig, path)
    return fig
