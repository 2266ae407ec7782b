"""The verdict's test: is one arm's lead over another real? A paired comparison over the seeds
both arms ran (a seed fixes the data subset, the split and the initialisation luck for both).

n >= 3 shared seeds: paired t-test with the mean difference and its 95 % t interval; n = 2: the
exact sign-flip permutation test (never below p = 0.5). Not significant: the seeds a paired
t-test would need for 80 % power. Why: docs/architecture.md, "Costs and the verdict".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product

ALPHA = 0.05
POWER = 0.8
MAX_SEEDS = 100  # beyond this the planning figure is "more than 100"


@dataclass(frozen=True)
class Paired:
    """Leader minus other, over `n` shared seeds (fractions of accuracy, not points)."""

    mean: float
    std: float
    n: int
    won: int  # seeds on which the leader was ahead
    p: float
    method: str  # "paired t" or "exact sign-flip permutation"
    low: float | None  # 95 % interval of the mean difference (None: no spread to judge by)
    high: float | None

    @property
    def significant(self) -> bool:
        return self.p < ALPHA

    @property
    def seeds_needed(self) -> int | None:
        """For 80 % power; None: significant, or no difference or spread to plan with."""
        return None if self.significant else seeds_for_power(self.mean, self.std)


def compare(a: dict, b: dict) -> Paired | None:
    """`a`, `b`: seed -> metric. None with fewer than two shared seeds."""
    shared = sorted(set(a) & set(b), key=str)
    if len(shared) < 2:
        return None
    diffs = [round(a[s] - b[s], 9) for s in shared]  # float noise is not a spread
    n = len(diffs)
    mean = sum(diffs) / n
    std = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1)) if len(set(diffs)) > 1 else 0.0
    if n == 2:
        method, p = "exact sign-flip permutation", _sign_flip_p(diffs)
    else:
        method, p = "paired t", _t_p(diffs, mean, std)
    low = high = None
    if std > 0:
        from scipy import stats

        half = stats.t.ppf(1 - ALPHA / 2, n - 1) * std / math.sqrt(n)
        low, high = mean - half, mean + half
    return Paired(mean, std, n, sum(d > 0 for d in diffs), p, method, low, high)


def _t_p(diffs: list[float], mean: float, std: float) -> float:
    if std == 0:  # every seed moved by the same amount: no spread, t is infinite (or 0/0)
        return 1.0 if mean == 0 else 0.0
    from scipy import stats

    return float(stats.ttest_rel(diffs, [0.0] * len(diffs)).pvalue)


def _sign_flip_p(diffs: list[float]) -> float:
    """Two-sided exact permutation p: the share of the 2^n sign patterns whose |mean| is at
    least the observed one (the observed pattern included, so p >= 2 / 2^n)."""
    observed = abs(sum(diffs)) - 1e-12
    flips = list(product((1, -1), repeat=len(diffs)))
    extreme = sum(abs(sum(s * d for s, d in zip(f, diffs, strict=True))) >= observed for f in flips)
    return extreme / len(flips)


def seeds_for_power(mean: float, std: float) -> int | None:
    """Smallest n at which a two-sided paired t-test at 0.05 has 80 % power for a true mean
    difference `mean` with per-seed std `std` (the observed ones: a planning figure, itself
    noisy). None when there is no difference or no spread to plan with; MAX_SEEDS + 1 for
    'more than MAX_SEEDS'."""
    if std <= 0 or mean == 0:
        return None
    from scipy import stats

    effect = abs(mean) / std
    for n in range(3, MAX_SEEDS + 1):
        crit = stats.t.ppf(1 - ALPHA / 2, n - 1)
        power = stats.nct.sf(crit, n - 1, effect * math.sqrt(n)) + stats.nct.cdf(
            -crit, n - 1, effect * math.sqrt(n)
        )
        if power >= POWER:
            return n
    return MAX_SEEDS + 1


def describe(p: Paired) -> str:
    """'significant at 0.05 (paired t, n = 4, p = 0.010; +3.2 points, 95 % CI +1.0 to +5.4)' or
    'not distinguishable (...; n = 2: run more seeds, about 6 for 80 % power ...)'."""
    ci = (
        f", 95 % CI {100 * p.low:+.1f} to {100 * p.high:+.1f}"
        if p.low is not None and p.high is not None
        else ""
    )
    stats_text = f"{p.method}, n = {p.n}, p {p_text(p.p)}; {100 * p.mean:+.1f} points{ci}"
    if p.significant:
        return f"significant at {ALPHA:g} ({stats_text}; ahead on {p.won}/{p.n} seeds)"
    text = f"not distinguishable ({stats_text}; ahead on {p.won}/{p.n} seeds"
    if p.n == 2:
        text += "; n = 2 cannot reach p < 0.05: run more seeds"
    if p.seeds_needed is not None and p.seeds_needed > p.n:
        many = f"more than {MAX_SEEDS}" if p.seeds_needed > MAX_SEEDS else f"about {p.seeds_needed}"
        text += f"; {many} seeds needed for 80 % power (paired t at the observed paired spread)"
    return text + ")"


def short(p: Paired) -> str:
    """'significant (paired t, n = 3, p = 0.012)' / 'not distinguishable (..., p = 0.19)'."""
    word = "significant" if p.significant else "not distinguishable"
    return f"{word} ({p.method}, n = {p.n}, p {p_text(p.p)})"


def p_text(p: float) -> str:
    """'= 0.010', '= 0.19', '< 0.001'."""
    return "< 0.001" if p < 0.001 else f"= {p:.3f}" if p < 0.1 else f"= {p:.2f}"
