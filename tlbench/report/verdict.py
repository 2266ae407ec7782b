"""The verdict at the top of report.md: per cell (data, model, label budget), which strategy wins
after per-strategy selection, by how much, whether that lead is real, and what it costs.

Strategies are ranked on their selected setting's comparison metric; a lead under `TIE` is a tie;
the leader is tested against every other arm (`tlbench.report.paired`); warnings come from
`tlbench.report.health` and `tlbench.report.costs`; the advice names the most accurate strategy
costing at most 1/`SAVING` of the best's cost. Rules: docs/architecture.md, "Costs and the verdict".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tlbench.report import costs, crossover, health, paired, tuning
from tlbench.report.format import pct, ratio
from tlbench.report.groups import Group, strategy_rank
from tlbench.report.readings import mean_curve
from tlbench.report.selection import Arm

TIE = 0.0005  # 0.05 points: shown as a lead of 0.0
SAVING = 1.5  # an alternative the advice names must cost at most 1/1.5 of the best's cost


@dataclass
class Verdict:
    cell: tuple[str, str, str]  # data, model, label budget
    ranked: list[Arm]  # arms with a selected setting and a score, best first
    missing: list[Arm] = field(default_factory=list)  # arms with nothing to compare
    metric: str = "test_acc"

    def score(self, arm: Arm) -> tuple[float, float | None, int]:
        return arm.selected.stat(self.metric)

    @property
    def tied(self) -> list[Arm]:
        """Every arm within TIE of the best (one arm when there is no tie)."""
        if not self.ranked:
            return []
        top = self.score(self.ranked[0])[0]
        return [a for a in self.ranked if top - self.score(a)[0] < TIE]

    @property
    def lead(self) -> float | None:
        if len(self.ranked) < 2:
            return None
        return self.score(self.ranked[0])[0] - self.score(self.ranked[1])[0]

    @property
    def single_seed(self) -> bool:
        return any(self.score(a)[2] < 2 for a in self.ranked[:2])

    @property
    def distinguishable(self) -> bool | None:
        """Whether the paired test finds the lead over the runner-up significant; None when
        there is nothing to compare or fewer than two shared seeds (n = 1: no test)."""
        if len(self.ranked) < 2:
            return None
        return self.real(self.ranked[0], self.ranked[1])

    def test(self, best: Arm, other: Arm) -> paired.Paired | None:
        """`best` minus `other` over the seeds both ran (None below two shared seeds)."""
        return paired.compare(
            best.selected.by_seed(self.metric), other.selected.by_seed(self.metric)
        )

    def real(self, best: Arm, other: Arm) -> bool | None:
        if (p := self.test(best, other)) is None:  # n = 1 on a side, or < 2 shared seeds
            return None
        return p.significant and self.score(best)[0] - self.score(other)[0] >= TIE

    def paired(self) -> paired.Paired | None:
        """The leader against the runner-up (None below two shared seeds)."""
        if len(self.ranked) < 2:
            return None
        return self.test(self.ranked[0], self.ranked[1])

    def cost(self, arm: Arm) -> float | None:
        """The selected setting's measured cost per run (tlbench.report.costs)."""
        return costs.setting_cost(arm.selected)[0]

    def cost_ratio(self, a: Arm, b: Arm) -> float | None:
        ta, tb = self.cost(a), self.cost(b)
        return ta / tb if ta and tb else None

    def advice(self) -> str:
        """The best arm against the most accurate arm that costs clearly less (at most 1/SAVING
        of its cost) and did not collapse: not simply the cheapest, since a cheaper arm at chance
        level is no alternative when a better one also saves, and not one that saves a few
        percent."""
        best = self.ranked[0]
        cost = self.cost(best)
        costed = [a for a in self.ranked[1:] if self.cost(a)]
        if not cost or not costed:
            return ""
        if all(self.cost(a) >= cost for a in costed):
            return f"{best.strategy} is the most accurate and the cheapest: use it."
        saving = [a for a in costed if self.cost(a) * SAVING <= cost]
        # an arm whose selected setting collapsed in a seed is no advice to follow
        cheaper = [a for a in saving if not health.collapses(a.selected)]
        if not cheaper:
            fell = ", ".join(a.strategy for a in saving)
            return f"{best.strategy} is the most accurate, and " + (
                f"the strategies that cost less than 1/{SAVING:g} of it collapsed ({fell}): use it."
                if saving
                else f"no strategy costs less than 1/{SAVING:g} of it: use it."
            )
        alt = max(cheaper, key=lambda a: self.score(a)[0])  # ranked order breaks ties
        if alt in self.tied:
            return f"{alt.strategy} ties for the best accuracy and is cheaper: use it."
        share = self.score(alt)[0] / self.score(best)[0] if self.score(best)[0] else 0.0
        text = (
            f"{alt.strategy} reaches {100 * share:.0f} % of {best.strategy}'s accuracy at "
            f"{ratio(self.cost_ratio(alt, best) or 0)} of the cost"
        )
        real = self.real(best, alt)  # this pair, not the leader and the runner-up
        if real is None:
            return text + " (too few seeds to tell whether the difference is real)."
        p = paired.short(self.test(best, alt))
        if real:
            return text + f"; {best.strategy}'s lead over it is {p}."
        return text + f", and the difference is {p}: prefer {alt.strategy}."

    def line(self, show_where: bool) -> str:
        data, model, budget = self.cell
        head = f"- **{budget}**" + (f" ({data} · {model})" if show_where else "") + ": "
        gone = "; ".join(f"{a.strategy}: no finished run" for a in self.missing)
        if not self.ranked:
            return head + "no strategy finished" + (f" ({gone})." if gone else ".")
        first = self.ranked[0]
        if len(self.ranked) == 1:
            text = f"only **{first.strategy}** finished: {_score(self, first)}; nothing to compare."
            return head + text + _warned(self.ranked) + (f" ({gone})" if gone else "")
        second = self.ranked[1]
        if len(self.tied) > 1:
            text = " and ".join(f"**{a.strategy}**" for a in self.tied)
            text += f" tie at {pct(self.score(first)[0])}"
        else:
            text = (
                f"**{first.strategy}** {_score(self, first)} leads {second.strategy} "
                f"{_score(self, second)} by {100 * self.lead:.1f} points"
            )
        text += ": " + self._judgement() + "."
        r = self.cost_ratio(first, second)
        if r is not None:
            text += (
                f" Cost {first.strategy} / {second.strategy}: {ratio(r)}{_one_offs(first, second)}."
            )
        if rest := self.ranked[2:]:
            text += " Then: " + ", ".join(f"{a.strategy} {_score(self, a)}" for a in rest) + "."
            tests = [(a, self.test(first, a)) for a in rest]
            text += "".join(
                f" {first.strategy} vs {a.strategy}: {paired.short(p)}." for a, p in tests if p
            )
        if advice := self.advice():
            text += f" Advice: {advice}"
        text += _warned(self.ranked)
        if gone:
            text += f" ({gone}.)"
        return head + text

    def _judgement(self) -> str:
        if self.single_seed:
            return "single seed (n = 1): no spread, so the lead cannot be judged"
        if (p := self.paired()) is None:
            return "no paired test: the two share fewer than two seeds"
        return paired.describe(p)


def _score(v: Verdict, arm: Arm) -> str:
    m, s, n = v.score(arm)
    return f"{pct(m, s)} (n = {n})"


def verdicts(arms: list[Arm], metric: str) -> list[Verdict]:
    cells: dict[tuple, list[Arm]] = {}
    for a in arms:
        cells.setdefault(a.cell, []).append(a)
    out = []
    for cell, members in cells.items():
        scored = [a for a in members if a.selected is not None and _has(a.selected, metric)]
        scored.sort(key=lambda a: (-a.selected.stat(metric)[0], strategy_rank(a.strategy)))
        missing = [a for a in members if a not in scored]
        out.append(Verdict(cell, scored, missing, metric))
    return out


def warnings(arms: list[Arm]) -> list[str]:
    """Per arm with a selected setting: settings with failed seeds, collapsed settings, and the
    selected setting with noisy timings, at the edge of its grid or still rising at its last epoch. (An arm with
    no finished run is named once, as such, by the verdict line.)"""
    notes = []
    for a in arms:
        if (g := a.selected) is None:
            continue
        for s in a.settings:
            if note := health.failed_note(s):
                if s is g and len(a.settings) > 1:
                    note += ", selected anyway: no setting finished every seed"
                elif s is not g:
                    note += ", so not preferred to settings whose seeds all finished"
                notes.append(f"{_where(a, s)}: {note}")
        notes += _collapsed(a)
        if len(a.settings) > 1:
            notes += [
                f"{a.strategy}: selected {e} (the best may lie beyond the grid)"
                for e in health.grid_edge(g.extras, [other.extras for other in a.settings])
            ]
        if note := costs.noise_note(g):
            notes.append(f"{_where(a, g)}: {note}; its cost uses the median epoch")
        epochs, means, _ = mean_curve(g)
        if health.rising(means):
            notes.append(
                f"{_where(a, g)}: validation still rising at its last epoch ({epochs[-1]}): "
                "more epochs may pay off"
            )
    return notes


def _warned(arms: list[Arm]) -> str:
    notes = warnings(arms)
    return " Warnings: " + "; ".join(notes) + "." if notes else ""


def _one_offs(*arms: Arm) -> str:
    """' (transfer's includes its feature extraction, 6.7 s, once per cache key)', or ''."""
    parts = [
        f"{a.strategy}'s includes its {costs.EXTRACTION}, {seconds:.1f} s"
        for a in arms
        if (seconds := costs.extraction_per_run(a.selected.ok))
    ]
    return f" ({'; '.join(parts)}, once per cache key)" if parts else ""


def _where(a: Arm, g: Group) -> str:
    return f"{a.strategy} at {g.config}" if g.config else a.strategy


def _collapsed(a: Arm) -> list[str]:
    """'lp_ft at optimizer.lr=3e-3 collapsed after its switch in 2/2 seeds', for every setting
    of the arm (an unselected one: said why selection passed it over)."""
    notes = []
    for s in a.settings:
        if note := health.collapse_note(s):
            passed = s is not a.selected and health.collapses(s, health.AFTER_SWITCH) > 0
            notes.append(
                f"{_where(a, s)} {note}" + (", so not selected for its probe epoch" * passed)
            )
    return notes


def _has(g: Group, metric: str) -> bool:
    return g.stat(metric)[0] is not None


def section(arms: list[Arm], metric: str, metric_name: str, sweep_note: str = "") -> list[str]:
    vs = verdicts(arms, metric)
    show_where = len({(v.cell[0], v.cell[1]) for v in vs}) > 1
    caveat = ""
    if metric != "test_acc" and any(len(a.settings) > 1 for a in arms):
        caveat = (
            " No test accuracy for every configuration: the comparison reuses the validation "
            "accuracy that chose the settings, which flatters strategies that tried more of them."
        )
    return [
        "## Verdict",
        "",
        f"Per label budget, each strategy at the setting it selected on validation, compared on "
        f"the {metric_name} (mean ± std over seeds, n = finished seeds). The leader is compared "
        "with each other strategy by a paired test over the seeds both ran (paired t-test for "
        "n ≥ 3; exact sign-flip permutation at n = 2, which cannot reach p < 0.05), with the "
        "mean difference and its 95 % interval; a lead counts when p < 0.05, and when it does "
        "not the seeds a paired t-test would need for 80 % power at the observed paired spread "
        "are given. Cost is the selected setting's median epoch time × epochs (mean over "
        "seeds), plus the feature extraction one run needs, counted once per cache key; a run "
        "whose epoch times vary by more than 2x is flagged (tlbench.report.costs)." + caveat,
        "",
        *(v.line(show_where) for v in vs),
        *(f"- **Tuning**: {note}" for note in tuning.verdict_notes(arms)),
        *(f"- **Label budget**: {note}." for note in crossover.notes(arms, metric)),
        *([f"- **Sweep**: {sweep_note}."] if sweep_note else []),
    ]
