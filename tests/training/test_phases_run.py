"""Issue 24, items 3 and 4 in summary.json: `phases_run` records what the epochs that ran trained
(not the plan), and `epoch_seconds` each epoch's wall time, both read from metrics.csv's rows (so
a resumed run's earlier segments count too)."""

from __future__ import annotations

import csv

import numpy as np

from tlbench.summary_file import RunSummary
from tlbench.training.run import train
from tlbench.training.summary import epoch_facts

LP_FT = [
    "model=lenet5",
    "strategy=lp_ft",
    "strategy.pretrained=false",
    "test_after_fit=false",
    "trainer.precision=32-true",  # no precision probe: a faster test
]


def test_lp_ft_records_its_probe_then_everything(cfg_factory, tmp_path):
    s = train(
        cfg_factory(
            *LP_FT, "strategy.schedule=[{epoch: 1, trainable: [all]}]", "trainer.max_epochs=2"
        )
    )
    head = s.trainable_params_by_phase[0]["trainable"]
    assert s.status == "ok" and head < s.total_params
    assert s.phases_run == [
        {"from_epoch": 0, "trainable": head},
        {"from_epoch": 1, "trainable": s.total_params},
    ]
    assert s.trainable_params == s.total_params
    assert len(s.epoch_seconds) == 2 and all(t > 0 for t in s.epoch_seconds)
    with open(tmp_path / "run" / "metrics.csv", newline="") as f:
        logged = [float(r["params/trainable"]) for r in csv.DictReader(f)]
    assert logged == [head, s.total_params]  # every epoch says what trained in it


def test_a_smoke_run_records_only_the_phase_it_ran(cfg_factory):
    """fast_dev_run (one batch) is allowed to stop before lp_ft's switch at epoch 3: the summary
    then says the probe alone ran, where the plan lists both phases."""
    s = train(cfg_factory(*LP_FT, "trainer.fast_dev_run=true"))
    plan = s.trainable_params_by_phase
    assert [p["epoch"] for p in plan] == [0, 3]
    assert s.phases_run == [{"from_epoch": 0, "trainable": plan[0]["trainable"]}]
    assert s.trainable_params == plan[0]["trainable"] < s.total_params


def test_facts_span_every_segment_and_undo_float32_rounding():
    total = 138_357_544  # vgg16's count: float32, as Lightning logs it, rounds it
    logged = float(np.float32(total))
    assert logged != total
    rows = [  # a first segment's two epochs (from metrics.csv), then the resumed one's
        {"epoch": 0, "time/epoch_seconds": 2.0, "params/trainable": 4100.0},
        {"epoch": 1, "time/epoch_seconds": 2.5, "params/trainable": 4100.0},
        {"epoch": 2, "time/epoch_seconds": None, "params/trainable": logged},
    ]
    summary = RunSummary(
        trainable_params_by_phase=[
            {"epoch": 0, "trainable": 4100},
            {"epoch": 2, "trainable": total},
        ],
        total_params=total,
    )
    facts = epoch_facts(rows, summary)
    assert facts["epoch_seconds"] == [2.0, 2.5]  # a non-finite time is left out
    assert facts["phases_run"] == [
        {"from_epoch": 0, "trainable": 4100},
        {"from_epoch": 2, "trainable": total},
    ]
    assert facts["trainable_params"] == total
    assert epoch_facts([], summary) == {"epoch_seconds": [], "phases_run": []}
