"""`## What trained`: the strategy x stage drift table from summary.json, the heat map, and the
runs whose frozen stages changed."""

from __future__ import annotations

from pathlib import Path

from tlbench.report import what_trained
from tlbench.report.groups import Group
from tlbench.report.runs import Run
from tlbench.report.selection import Arm
from tlbench.summary_file import RunSummary


def _arm(strategy, drifts, bn=None, warnings=None, basis="from the run's start"):
    runs = [
        Run(dir=Path(f"/x/{strategy}{i}"), status="ok", overrides={"seed": str(i)},
            summary=RunSummary(strategy=strategy, seed=i, weight_drift=d,
                               bn_stats_changed=bn or {}, weight_drift_basis=basis,
                               weight_drift_warnings=warnings[i] if warnings else []))
        for i, d in enumerate(drifts)
    ]  # fmt: skip
    g = Group(key=(strategy,), runs=runs)
    return Arm(key=("d", "m", strategy, "10/class"), settings=[g], selected=g)


def test_the_table_has_a_row_per_strategy_and_marks_bn_and_frozen_changes(tmp_path):
    arms = [
        _arm("finetune", [{"layer1": 0.02, "layer2": 0.04}, {"layer1": 0.04, "layer2": 0.06}],
             bn={"layer1": True}),
        _arm("transfer", [{"layer1": 0.0, "layer2": 0.0}], basis="cached features: frozen"),
        _arm("partial", [{"layer1": 0.001, "layer2": 0.1}],
             warnings=[["stage layer1: parameters the strategy froze changed"]]),
    ]  # fmt: skip
    text = "\n".join(what_trained.section(arms, tmp_path))
    assert "| strategy | layer1 | layer2 |" in text
    assert "| finetune | 0.03* | 0.05 |" in text
    assert "| transfer (cached: frozen by construction) | 0 | 0 |" in text
    assert "- partial (partial0): stage layer1: parameters the strategy froze changed" in text
    assert (tmp_path / what_trained.WHAT_TRAINED_PNG).stat().st_size > 1000


def test_runs_without_drift_add_no_section(tmp_path):
    arm = _arm("finetune", [None])
    assert what_trained.section([arm], tmp_path) == []
