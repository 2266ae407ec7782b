"""Per-strategy selection on validation: each arm (data, model, strategy, label budget) keeps the
setting with the best MEAN best-val-acc over its seeds (settings whose seeds all finished, and
none collapsed after a schedule switch, first: `tlbench.report.health`), so a sweep over
learning rates, epochs or multipliers compares each strategy at its own best setting (as Kornblith et al. 2019 and VTAB
tune every arm on validation) instead of at one shared setting. Test accuracy is never looked at
here; the report shows the selected setting's test accuracy once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tlbench.report import costs, health
from tlbench.report.groups import Group, strategy_rank

SELECT_ON = "best_val_acc"  # the one metric selection reads


@dataclass
class Arm:
    """One (data, model, strategy, label budget) and every setting tried for it."""

    key: tuple[str, str, str, str]
    settings: list[Group]
    selected: Group | None  # None when no setting has a finished run with a val accuracy

    @property
    def strategy(self) -> str:
        return self.key[2]

    @property
    def budget(self) -> str:
        return self.key[3]

    @property
    def cell(self) -> tuple[str, str, str]:
        return self.key[0], self.key[1], self.key[3]

    @property
    def search_seconds(self) -> float:
        """Fit seconds of every run of every setting (failed ones included): the search's cost."""
        return sum(g.fit_total for g in self.settings)

    @property
    def search_cost(self) -> float:
        """The search's measured cost (tlbench.report.costs): every run's median epoch time x
        epochs plus its own one-offs, and each shared one-off (extraction) once per key."""
        return costs.search_cost(self.settings)

    @property
    def n_runs(self) -> int:
        return sum(len(g.runs) for g in self.settings)

    @property
    def n_failed(self) -> int:
        return sum(g.count("failed", "unknown") for g in self.settings)


def _val_key(g: Group, allow_collapsed: bool = False) -> tuple:
    """Higher is better: every seed finished (a setting judged on its survivors is flattered:
    a diverging seed is evidence against it), then no seed collapsed after a schedule switch
    (its best val acc is the probe's, not what the strategy ended with; `allow_collapsed`
    lifts this), then mean val acc, then more seeds (a tie on fewer seeds is weaker evidence),
    then the cheaper setting. Means are rounded to 1e-9 so float noise is not a winner."""
    m, _, n = g.stat(SELECT_ON)
    fit = costs.setting_cost(g)[0]
    stable = allow_collapsed or not health.collapses(g, health.AFTER_SWITCH)
    return (not health.failed(g), stable, round(m, 9), n, -(fit if fit is not None else math.inf))


def best_on_validation(settings: list[Group], allow_collapsed: bool = False) -> Group | None:
    scored = [g for g in settings if g.stat(SELECT_ON)[0] is not None]
    if not scored:
        return None
    best = scored[0]
    for g in scored[1:]:  # strict '>': on a full tie the first in table order stays
        if _val_key(g, allow_collapsed) > _val_key(best, allow_collapsed):
            best = g
    return best


def select(groups: list[Group], allow_collapsed: bool = False) -> list[Arm]:
    """The arms of a report, in table order (data, model, budget, strategy)."""
    arms: dict[tuple, list[Group]] = {}
    for g in groups:
        if any(r.summary for r in g.runs):  # a job without summary yet: its arm is unknown
            arms.setdefault(g.arm, []).append(g)
    out = [Arm(key, gs, best_on_validation(gs, allow_collapsed)) for key, gs in arms.items()]
    return sorted(out, key=_arm_order)


def _arm_order(a: Arm):
    lpc = a.settings[0].labels_per_class
    return (a.key[0], a.key[1], lpc if lpc is not None else math.inf, strategy_rank(a.strategy))


def selected_groups(arms: list[Arm]) -> list[Group]:
    return [a.selected for a in arms if a.selected is not None]


def any_search(arms: list[Arm]) -> bool:
    """Whether some arm tried more than one setting (else selection is trivial)."""
    return any(len(a.settings) > 1 for a in arms)
