"""Where the label budget flips the answer: crossovers between adjacent budgets, interpolated on
log(labels per class), with the paired test at each end."""

from __future__ import annotations

import math

import pytest

from tlbench.report import crossover
from tlbench.report.groups import Group
from tlbench.report.runs import Run
from tlbench.report.selection import Arm
from tlbench.summary_file import RunSummary


def _arm(strategy, budget, accs):
    runs = [
        Run(dir=None, summary=RunSummary(data="d", model="m", strategy=strategy,
            samples_per_class=budget, seed=s, test_acc=a, best_val_acc=a),
            status="ok", overrides={"seed": str(s)})
        for s, a in enumerate(accs)
    ]  # fmt: skip
    g = Group(key=(strategy, budget), runs=runs)
    return Arm(key=("d", "m", strategy, f"{budget}/class"), settings=[g], selected=g)


def test_a_crossover_is_interpolated_on_log_labels_and_judged_at_both_ends():
    arms = [
        _arm("transfer", 5, [0.60, 0.61, 0.62]),  # transfer ahead at 5 by 0.10
        _arm("finetune", 5, [0.50, 0.52, 0.49]),
        _arm("transfer", 20, [0.70, 0.70, 0.71]),  # finetune ahead at 20 by 0.10
        _arm("finetune", 20, [0.80, 0.81, 0.80]),
        _arm("scratch", 20, [0.20, 0.25, 0.22]),  # never near: no crossover with it
    ]
    (c,) = crossover.find(arms, "test_acc")
    assert (c.rising, c.falling, c.low, c.high) == ("finetune", "transfer", 5, 20)
    d_lo, d_hi = 0.61 - 0.5033333, 0.7033333 - 0.8033333  # transfer - finetune
    expected = math.exp(math.log(5) + d_lo * (math.log(20) - math.log(5)) / (d_lo - d_hi))
    assert c.at == pytest.approx(expected, rel=1e-3)  # about the geometric middle, 10
    assert c.distinguishable == (True, True)
    assert crossover.notes(arms, "test_acc") == [
        "finetune overtakes transfer between 5 and 20 labels per class (at about 10, "
        "interpolated on log labels; significant at 5; significant at 20)"
    ]


def test_no_crossover_when_the_order_holds_or_with_one_budget():
    arms = [_arm("transfer", 5, [0.6, 0.6]), _arm("finetune", 5, [0.5, 0.5]),
            _arm("transfer", 20, [0.8, 0.8]), _arm("finetune", 20, [0.7, 0.7])]  # fmt: skip
    assert crossover.find(arms, "test_acc") == []
    assert crossover.find(arms[:2], "test_acc") == []


def test_a_single_seed_end_has_no_paired_test():
    arms = [_arm("transfer", 10, [0.6]), _arm("finetune", 10, [0.5]),
            _arm("transfer", 100, [0.7]), _arm("finetune", 100, [0.9])]  # fmt: skip
    (c,) = crossover.find(arms, "test_acc")
    assert c.distinguishable == (None, None)
    assert "no paired test at 10 (fewer than 2 shared seeds)" in c.sentence()


def test_only_swaps_among_the_leaders_change_the_answer():
    """The winner at 5 overtaken by the winner at 20, and the two leaders of a budget swapping,
    are reported; a third-placed strategy passing the old winner is not (it changes no answer)."""
    arms = [
        _arm("transfer", 5, [0.60, 0.61]), _arm("partial", 5, [0.55, 0.56]),
        _arm("finetune", 5, [0.50, 0.51]), _arm("scratch", 5, [0.20, 0.21]),
        _arm("transfer", 20, [0.70, 0.71]), _arm("partial", 20, [0.84, 0.85]),
        _arm("finetune", 20, [0.88, 0.89]), _arm("scratch", 20, [0.75, 0.76]),
    ]  # fmt: skip
    pairs = {(c.rising, c.falling) for c in crossover.find(arms, "test_acc")}
    assert pairs == {("finetune", "transfer"), ("finetune", "partial"), ("partial", "transfer")}
