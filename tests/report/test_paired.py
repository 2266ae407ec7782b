"""The verdict's paired test (issue 24): on arms of equal true accuracy its "significant" call
keeps to the nominal 5 % at n = 2, 3 and 5 (the old "lead > seed std" rule fired 33 / 21 / 11 %
of the time), and its text names the method, p, the interval and the seeds a test would need."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.helpers.report_runs import make_run
from tlbench.report.groups import Group
from tlbench.report.paired import compare, seeds_for_power
from tlbench.report.runs import Run
from tlbench.report.selection import Arm
from tlbench.report.verdict import verdicts
from tlbench.summary_file import RunSummary

from .test_verdict import add, verdict_lines


def _arm(strategy: str, accs: list[float]) -> Arm:
    runs = [
        Run(Path(f"{strategy}{i}"), RunSummary(seed=i, test_acc=acc, strategy=strategy), "ok")
        for i, acc in enumerate(accs)
    ]
    g = Group((strategy,), runs)
    return Arm(("digits", "m", strategy, "5/class"), [g], g)


@pytest.mark.parametrize("n", [2, 3, 5])
def test_equal_arms_are_called_significant_at_most_about_5_percent_of_the_time(n):
    """2000 simulated pairs of arms with the same true accuracy: each seed draws a shared
    effect (its data subset and split, the same for both arms) and per-arm noise. The verdict's
    leader is whichever mean came out higher, as in a real report."""
    rng = random.Random(24 + n)
    calls = 0
    for _ in range(2000):
        shared = [rng.gauss(0, 0.03) for _ in range(n)]
        a = [0.70 + s + rng.gauss(0, 0.02) for s in shared]
        b = [0.70 + s + rng.gauss(0, 0.02) for s in shared]
        (v,) = verdicts([_arm("transfer", a), _arm("finetune", b)], "test_acc")
        calls += v.distinguishable is True
    rate = calls / 2000
    assert rate <= 0.06, rate
    if n == 2:
        assert rate == 0  # the exact sign-flip test cannot go below p = 0.5 with two seeds


def test_a_clear_difference_is_significant_with_its_interval(tmp_path):
    add(tmp_path, "finetune", [0.62, 0.66, 0.65, 0.70], fit=30)
    add(tmp_path, "transfer", [0.58, 0.61, 0.62, 0.66], fit=3)
    (line,) = verdict_lines(tmp_path)
    assert (
        "by 4.0 points: significant at 0.05 (paired t, n = 4, p = 0.002; +4.0 points, "
        "95 % CI +2.7 to +5.3; ahead on 4/4 seeds)." in line
    )
    assert "beyond the seed spread" not in line


def test_two_seeds_say_no_test_can_tell_and_how_many_seeds_would(tmp_path):
    add(tmp_path, "finetune", [0.80, 0.86], fit=30)
    add(tmp_path, "transfer", [0.78, 0.80], fit=3)
    (line,) = verdict_lines(tmp_path)
    assert (
        "not distinguishable (exact sign-flip permutation, n = 2, p = 0.50; +4.0 points, "
        "95 % CI -21.4 to +29.4; ahead on 2/2 seeds; n = 2 cannot reach p < 0.05: run more "
        "seeds; about 7 seeds needed for 80 % power (paired t at the observed paired spread))"
    ) in line


def test_the_power_calculation_matches_the_textbook_values():
    """Paired t, two-sided 0.05, 80 % power: effect size 1 needs 10 pairs, 0.5 needs 34
    (Cohen's tables); no spread or no difference: nothing to plan with."""
    assert seeds_for_power(0.01, 0.01) == 10
    assert seeds_for_power(0.01, 0.02) == 34
    assert seeds_for_power(0.0, 0.02) is None and seeds_for_power(0.01, 0.0) is None
    assert seeds_for_power(0.001, 0.1) == 101  # "more than 100"


def test_the_test_pairs_by_seed_and_needs_two_shared_seeds():
    p = compare({0: 0.9, 1: 0.8, 2: 0.7, 7: 0.1}, {0: 0.8, 1: 0.7, 2: 0.6, 9: 0.9})
    assert (p.n, p.won, p.method) == (3, 3, "paired t") and p.significant  # seeds 7, 9 unpaired
    assert compare({0: 0.9, 1: 0.8}, {1: 0.7, 2: 0.6}) is None


def test_the_verdict_compares_the_leader_with_every_other_arm(tmp_path):
    make_run(tmp_path, "x", strategy="scratch", seed=9, spc=5, best=0.1, test=0.1, fit=1)
    add(tmp_path, "finetune", [0.90, 0.91, 0.93], fit=300)
    add(tmp_path, "transfer", [0.88, 0.90, 0.90], fit=10)
    add(tmp_path, "scratch", [0.50, 0.60, 0.70], fit=100)
    (line,) = verdict_lines(tmp_path)
    assert "finetune vs scratch: significant (paired t, n = 3, p = 0.0" in line
