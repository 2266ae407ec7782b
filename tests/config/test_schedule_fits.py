"""Issue 24, item 4: no silent half-runs. A freeze schedule (lp_ft, gradual) whose switch comes at
or after `trainer.max_epochs` is refused before any data is read: in a single run's preflight
(before the run dir exists), in each job of a sweep (that job fails alone, saying why), and for
the config `resume=<dir> trainer.max_epochs=N` composes."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from tests.helpers.cli import TINY
from tlbench.config import preflight
from tlbench.config.validation import validate_config
from tlbench.errors import TlbenchError
from tlbench.runtime import launch, rundir
from tlbench.training.run import train

LENET = ["model=lenet5", "strategy.pretrained=false"]  # no weights: nothing to download


@pytest.mark.parametrize(
    "overrides, words",
    [
        (  # the case: lp_ft switches at epoch 3, a 3-epoch run ends before it
            ["strategy=lp_ft", "trainer.max_epochs=3"],
            [
                "trainer.max_epochs=3:",
                "strategy=lp_ft switches at epoch 3",
                "strategy.schedule[0].epoch",
                "an integer > 3",
                "trainer.max_epochs=4 at least",
                "strategy=transfer",
            ],
        ),
        (  # gradual's last stage (epoch 6) would never unfreeze in 5 epochs
            ["strategy=gradual", "trainer.max_epochs=5"],
            [
                "trainer.max_epochs=5:",
                "switches at epoch 6",
                "strategy.schedule[2].epoch",
                "an integer > 6",
            ],
        ),
        (  # the earliest late switch is named; the bound covers the last one
            ["strategy=gradual", "trainer.max_epochs=3"],
            ["switches at epoch 4", "strategy.schedule[1].epoch", "those phases", "an integer > 6"],
        ),
    ],
)
def test_a_switch_at_or_past_max_epochs_is_refused(cfg_factory, overrides, words):
    with pytest.raises(TlbenchError) as err:
        validate_config(cfg_factory(*LENET, *overrides))
    message = str(err.value)
    assert "\n" not in message and "Fix:" in message, message
    for w in words:
        assert w in message, (w, message)


@pytest.mark.parametrize(
    "overrides",
    [
        ["strategy=lp_ft", "trainer.max_epochs=4"],  # one epoch after the switch
        ["strategy=gradual", "trainer.max_epochs=7"],
        ["strategy=lp_ft", "strategy.schedule=[{epoch: 0, trainable: [all]}]"],  # from the start
        ["strategy=lp_ft", "trainer.fast_dev_run=true"],  # a one-batch smoke test, by intent
        ["strategy=finetune"],  # no schedule
    ],
)
def test_schedules_that_fit_pass(cfg_factory, overrides):
    validate_config(cfg_factory(*LENET, *overrides))  # TINY: trainer.max_epochs=1


def test_refused_before_the_run_dir_exists(tmp_path):
    run = tmp_path / "run"
    argv = [*TINY, *LENET, "strategy=lp_ft", f"hydra.run.dir={run}"]
    with pytest.raises(TlbenchError, match=r"trainer\.max_epochs=1: strategy=lp_ft switches"):
        preflight.preflight(argv, preflight.job_overrides(argv))
    assert not run.exists()


def test_a_sweep_job_with_too_few_epochs_fails_alone_before_its_data(cfg_factory, tmp_path):
    """In a sweep (e.g. `trainer.max_epochs=2,5`) each job validates its own config in train():
    the short one ends `failed` with the paragraph in its summary.json, before reading data or
    writing metrics, and the sweep goes on (a failed job never stops it)."""
    with pytest.raises(TlbenchError, match="switches at epoch 3"):
        train(cfg_factory(*LENET, "strategy=lp_ft", "trainer.max_epochs=2"))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["failed_before_training"] is True
    assert "trainer.max_epochs=2:" in summary["error"] and "Fix:" in summary["error"]
    assert summary["split_sizes"] is None  # the data was never set up
    assert not (tmp_path / "run" / "metrics.csv").exists()


def test_resume_with_fewer_epochs_than_the_switch_is_refused(tmp_path):
    run = tmp_path / "run"  # an interrupted lp_ft run that was to train 10 epochs
    (run / ".hydra").mkdir(parents=True)
    overrides = [*TINY, *LENET, "strategy=lp_ft", "trainer.max_epochs=10"]
    OmegaConf.save(OmegaConf.create(overrides), run / ".hydra" / "overrides.yaml")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    try:
        argv = launch.rewrite_argv([f"resume={run}", "trainer.max_epochs=3"])
        with pytest.raises(TlbenchError, match=r"trainer\.max_epochs=3: strategy=lp_ft"):
            preflight.preflight(argv, preflight.job_overrides(argv))
    finally:
        rundir.release_all()
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
