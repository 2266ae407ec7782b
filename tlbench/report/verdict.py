"""The verdict at the top of report.md: per cell (data, model, label budget), which strategy wins
after per-strategy selection, by how much, whether that lead is real, and what it costs.

Rules (all from the numbers, none tuned per dataset):
- Strategies are ranked on the comparison metric of their selected setting (test accuracy when
  every finished configuration has one, else best val accuracy).
- A lead under 0.05 points (what one decimal shows as 0.0) is a tie.
- The lead is *distinguishable* when it exceeds the seed spread: the larger of the two sample
  stds. With n = 1 on either side there is no spread, so it is neither (said so explicitly).
- Over seeds both strategies ran, a paired comparison (mean and std of the per-seed
  differences, and how many seeds the leader won) is shown beside it: seeds share the data
  subset and initialisation luck, so paired differences are the sharper evidence.
- The advice weighs accuracy against fit time: of the strategies costing at most 1/1.5 of the
  best's fit time, the most accurate one, with its share of the best accuracy and of the cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tlbench.report.format import pct, ratio
from tlbench.report.groups import Group, mean_std, strategy_rank
from tlbench.report.selection import Arm

TIE = 0.0005  # 0.05 points: shown as a lead of 0.0
SAVING = 1.5  # an alternative the advice names must cost at most 1/1.5 of the best's fit time


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
        """True / False, or None when n = 1 leaves no spread to judge by (or nothing to compare)."""
        if len(self.ranked) < 2:
            return None
        return self.beyond_spread(self.ranked[0], self.ranked[1])

    def beyond_spread(self, best: Arm, other: Arm) -> bool | None:
        """Whether `best` leads `other` by more than the larger of their seed stds; None with a
        single seed on either side."""
        if any(self.score(a)[2] < 2 for a in (best, other)):
            return None
        lead = self.score(best)[0] - self.score(other)[0]
        if lead < TIE:
            return False
        return lead > max(self.score(a)[1] or 0.0 for a in (best, other))

    def paired(self) -> tuple[float, float | None, int, int] | None:
        """(mean diff, std diff, seeds, seeds won) of leader minus runner-up over shared seeds."""
        if len(self.ranked) < 2:
            return None
        a, b = (x.selected.by_seed(self.metric) for x in self.ranked[:2])
        shared = sorted(set(a) & set(b), key=str)
        if len(shared) < 2:
            return None
        diffs = [a[s] - b[s] for s in shared]
        m, s, n = mean_std(diffs)
        return m, s, n, sum(d > 0 for d in diffs)

    def cost_ratio(self, a: Arm, b: Arm) -> float | None:
        ta, tb = a.selected.stat("fit_seconds")[0], b.selected.stat("fit_seconds")[0]
        return ta / tb if ta and tb else None

    def advice(self) -> str:
        """The best arm against the most accurate arm that costs clearly less (at most 1/SAVING
        of its fit time): not simply the cheapest, since a cheaper arm at chance level is no
        alternative when a better one also saves, and not one that saves a few percent."""
        best = self.ranked[0]
        cost = best.selected.stat("fit_seconds")[0]
        costed = [a for a in self.ranked[1:] if a.selected.stat("fit_seconds")[0]]
        if not cost or not costed:
            return ""
        if all(a.selected.stat("fit_seconds")[0] >= cost for a in costed):
            return f"{best.strategy} is the most accurate and the cheapest: use it."
        cheaper = [a for a in costed if a.selected.stat("fit_seconds")[0] * SAVING <= cost]
        if not cheaper:
            return (
                f"{best.strategy} is the most accurate, and no strategy costs less than "
                f"1/{SAVING:g} of it: use it."
            )
        alt = max(cheaper, key=lambda a: self.score(a)[0])  # ranked order breaks ties
        if alt in self.tied:
            return f"{alt.strategy} ties for the best accuracy and is cheaper: use it."
        share = self.score(alt)[0] / self.score(best)[0] if self.score(best)[0] else 0.0
        text = (
            f"{alt.strategy} reaches {100 * share:.0f} % of {best.strategy}'s accuracy at "
            f"{ratio(self.cost_ratio(alt, best) or 0)} of the cost"
        )
        real = self.beyond_spread(best, alt)  # this pair, not the leader and the runner-up
        if real:
            return text + f"; {best.strategy}'s lead over it is beyond the seed spread."
        if real is None:
            return text + " (too few seeds to tell whether the difference is real)."
        return text + f", and the difference is within the seed spread: prefer {alt.strategy}."

    def line(self, show_where: bool) -> str:
        data, model, budget = self.cell
        head = f"- **{budget}**" + (f" ({data} · {model})" if show_where else "") + ": "
        gone = "; ".join(f"{a.strategy}: no finished run" for a in self.missing)
        if not self.ranked:
            return head + "no strategy finished" + (f" ({gone})." if gone else ".")
        first = self.ranked[0]
        if len(self.ranked) == 1:
            text = f"only **{first.strategy}** finished: {_score(self, first)}; nothing to compare."
            return head + text + (f" ({gone})" if gone else "")
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
        if (p := self.paired()) is not None:
            sd = f" ± {100 * p[1]:.1f}" if p[1] is not None else ""
            text += f" Paired over {p[2]} seeds: {100 * p[0]:+.1f}{sd} points, {first.strategy}"
            text += f" ahead on {p[3]}/{p[2]}."
        r = self.cost_ratio(first, second)
        if r is not None:
            text += f" Fit time {first.strategy} / {second.strategy}: {ratio(r)}."
        if rest := self.ranked[2:]:
            text += " Then: " + ", ".join(f"{a.strategy} {_score(self, a)}" for a in rest) + "."
        if advice := self.advice():
            text += f" Advice: {advice}"
        if gone:
            text += f" ({gone}.)"
        return head + text

    def _judgement(self) -> str:
        if self.single_seed:
            return "single seed (n = 1): no spread, so the lead cannot be judged"
        if self.distinguishable:
            spread = max(self.score(a)[1] or 0.0 for a in self.ranked[:2])
            return f"beyond the seed spread (± {100 * spread:.1f})"
        return "not distinguishable (within the seed spread)"


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


def _has(g: Group, metric: str) -> bool:
    return g.stat(metric)[0] is not None


def section(arms: list[Arm], metric: str, metric_name: str) -> list[str]:
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
        f"the {metric_name} (mean ± std over seeds, n = finished seeds). A lead counts when it "
        "exceeds the larger seed std; fit time is the selected setting's mean `trainer.fit`."
        + caveat,
        "",
        *(v.line(show_where) for v in vs),
    ]
