"""Where the label budget flips the answer: the crossover between two strategies.

For each (data, model) cell swept over label budgets, the strategies' selected settings are
compared at each budget (the verdict's metric, mean over seeds). Where the order of two
strategies changes between adjacent budgets b1 < b2, the crossing of their difference is
interpolated linearly on log(labels per class) -- budgets are usually spaced geometrically (5,
20, 100) -- and each end says whether the paired test over seeds tells the two apart there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tlbench.report import paired


@dataclass
class Crossover:
    cell: tuple[str, str]  # (data, model)
    rising: str  # the strategy ahead at the larger budget
    falling: str  # ahead at the smaller budget
    low: float  # labels per class of the two budgets it lies between
    high: float
    at: float  # the interpolated crossing, labels per class
    distinguishable: tuple[bool | None, bool | None]  # at low, at high (None: < 2 seeds)

    def sentence(self) -> str:
        def judged(where: float, flag) -> str:
            if flag is None:
                return f"no paired test at {where:g} (fewer than 2 shared seeds)"
            return f"{'significant' if flag else 'not distinguishable'} at {where:g}"

        ends = "; ".join(
            judged(w, f) for w, f in zip((self.low, self.high), self.distinguishable, strict=True)
        )
        return (
            f"{self.rising} overtakes {self.falling} between {self.low:g} and {self.high:g} "
            f"labels per class (at about {self.at:.0f}, interpolated on log labels; {ends})"
        )


def _points(arms, metric: str) -> dict:
    """{(data, model): {strategy: {labels per class: selected Group}}} of arms with a number."""
    out: dict = {}
    for a in arms:
        g = a.selected
        if g is None or g.labels_per_class is None or g.stat(metric)[0] is None:
            continue
        cell = (a.key[0], a.key[1])
        out.setdefault(cell, {}).setdefault(a.strategy, {})[g.labels_per_class] = g
    return out


def find(arms, metric: str) -> list[Crossover]:
    """The crossovers that change the answer between adjacent budgets: the winner at the smaller
    budget overtaken by the winner at the larger one, or the winner and runner-up of either
    budget swapping order. Swaps further down the ranking are left out of the verdict."""
    found = []
    for cell, by_strategy in _points(arms, metric).items():
        leaders = _leaders(by_strategy, metric)
        names = sorted(by_strategy)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                for c in _pair(cell, a, by_strategy[a], b, by_strategy[b], metric):
                    if _changes_the_answer(c, leaders):
                        found.append(c)
    return found


def _changes_the_answer(c: Crossover, leaders: dict[float, list[str]]) -> bool:
    pair = {c.rising, c.falling}
    low, high = leaders.get(c.low, []), leaders.get(c.high, [])
    flip = low[:1] == [c.falling] and high[:1] == [c.rising]
    return flip or pair <= set(low) or pair <= set(high)


def _leaders(by_strategy: dict, metric: str) -> dict[float, list[str]]:
    """{budget: [winner, runner-up]} by the verdict's metric."""
    at: dict[float, list[tuple[float, str]]] = {}
    for name, points in by_strategy.items():
        for budget, g in points.items():
            at.setdefault(budget, []).append((g.stat(metric)[0], name))
    return {b: [name for _, name in sorted(vs, reverse=True)[:2]] for b, vs in at.items()}


def _pair(cell, a: str, ga: dict, b: str, gb: dict, metric: str) -> list[Crossover]:
    budgets = sorted(set(ga) & set(gb))
    out = []
    for lo, hi in zip(budgets, budgets[1:], strict=False):
        d_lo = ga[lo].stat(metric)[0] - gb[lo].stat(metric)[0]
        d_hi = ga[hi].stat(metric)[0] - gb[hi].stat(metric)[0]
        if d_lo == 0 or d_hi == 0 or (d_lo > 0) == (d_hi > 0):
            continue
        x_lo, x_hi = math.log(lo), math.log(hi)
        at = math.exp(x_lo + (0 - d_lo) * (x_hi - x_lo) / (d_hi - d_lo))
        rising, falling = (a, b) if d_hi > 0 else (b, a)
        flags = tuple(_separate(ga[x], gb[x], metric) for x in (lo, hi))
        out.append(Crossover(cell, rising, falling, lo, hi, at, flags))
    return out


def _separate(g1, g2, metric: str) -> bool | None:
    p = paired.compare(g1.by_seed(metric), g2.by_seed(metric))
    return None if p is None else p.significant


def notes(arms, metric: str) -> list[str]:
    """One sentence per crossover, for the verdict (the cell named when there are several)."""
    found = find(arms, metric)
    cells = {c.cell for c in found}
    return [
        (f"{c.cell[0]} / {c.cell[1]}: " if len(cells) > 1 else "") + c.sentence() for c in found
    ]
