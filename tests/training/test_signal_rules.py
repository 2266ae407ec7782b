"""Issue 22, the signal items: one rule for when SIGINT/SIGTERM lands (runtime.signals.Trap).

If the run's work completed, it is `ok` (exit 0); if the signal stopped the work, it is
`interrupted` (exit 130 / 143). Real signals are sent to the test process itself at exact
points of a real run (the point is chosen by wrapping one function of the run); the process-level
handler between runs is tested in a subprocess, so pytest's own handlers stay untouched.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys

import pytest

import tlbench.training.run
from tests.helpers.cli import TWO_STEPS
from tlbench import summary_file
from tlbench.config import REPO_ROOT
from tlbench.runtime import signals
from tlbench.training import feature_cache
from tlbench.training.module import TransferModule
from tlbench.training.run import train

FAST = [
    *TWO_STEPS,
    "callbacks.images=null",
]


def _kill_self(sig) -> None:
    os.kill(os.getpid(), sig)


def test_sigterm_during_feature_extraction_stops_at_the_next_batch(
    cfg_factory, tmp_path, monkeypatch
):
    monkeypatch.setitem(feature_cache.FIRST_BATCH, "cpu", 4)  # many extraction batches
    real, calls = feature_cache.autocast, []

    def forward_context(*args):  # the first extraction batch's forward pass: SIGTERM arrives
        calls.append(1)
        if len(calls) == 1:
            _kill_self(signal.SIGTERM)
        return real(*args)

    monkeypatch.setattr(feature_cache, "autocast", forward_context)
    cfg = cfg_factory(*FAST, "strategy=transfer", "strategy.cache_features=true")
    with pytest.raises(signals.Interrupted) as err:
        train(cfg)
    assert err.value.exit_code == 143 and "during feature extraction" in str(err.value)
    assert ", batch 2)" in str(err.value)  # stopped before the second of many batches
    s = summary_file.read(cfg.paths.output_dir)
    assert s.status == "interrupted" and "SIGTERM" in s.error
    assert not list((tmp_path / "cache").glob("*.pt"))  # no partial cache


def test_sigint_during_the_last_test_batch_interrupts(cfg_factory, monkeypatch):
    real = TransferModule.test_step

    def test_step(self, batch, batch_idx):
        if batch_idx == self.trainer.num_test_batches[0] - 1:
            _kill_self(signal.SIGINT)  # inside the last batch: its end is a step boundary
        return real(self, batch, batch_idx)

    monkeypatch.setattr(TransferModule, "test_step", test_step)
    cfg = cfg_factory(*FAST, "test_after_fit=true")
    with pytest.raises(signals.Interrupted) as err:
        train(cfg)
    assert err.value.exit_code == 130
    s = summary_file.read(cfg.paths.output_dir)
    assert s.status == "interrupted" and s.test_acc is None


def test_a_signal_after_the_last_step_leaves_the_completed_run_ok(cfg_factory, monkeypatch, caplog):
    # hparams.log runs after the test, the last thing the run does before its summary
    monkeypatch.setattr(
        tlbench.training.run.hparams, "log", lambda *a, **k: _kill_self(signal.SIGINT)
    )
    cfg = cfg_factory(*FAST, "test_after_fit=true")
    with caplog.at_level(logging.WARNING, logger="tlbench"):
        s = train(cfg)
    assert s.status == "ok" and s.test_acc is not None
    assert summary_file.read(cfg.paths.output_dir).status == "ok"
    assert "SIGINT arrived after the run's last step" in caplog.text


BETWEEN = """
import os, signal, sys
from tlbench.runtime import signals
from tlbench import summary_file
signals.BETWEEN_RUNS.install()
os.kill(os.getpid(), signal.{sig})  # after a run completed: summary printing, a sweep's report
print("still here", flush=True)
try:  # a sweep's next job
    with signals.Trap():
        print("trained", flush=True)
except signals.Interrupted as exc:
    print(exc, exc.exit_code, flush=True)
"""


def test_between_runs_a_signal_is_recorded_and_the_next_run_refuses_to_start():
    saved = {s: signal.getsignal(s) for s in signals.HANDLED}
    try:
        signals.BETWEEN_RUNS.install()
        _kill_self(signal.SIGTERM)  # the process lives on: the completed work ends normally
        assert signals.BETWEEN_RUNS.signum == signal.SIGTERM
        with pytest.raises(signals.Interrupted) as err, signals.Trap():
            pytest.fail("a run started after the signal")
        assert err.value.exit_code == 143 and signals.BETWEEN_RUNS.signum is None
    finally:
        signals.BETWEEN_RUNS.signum = None
        for s, handler in saved.items():
            signal.signal(s, handler)


@pytest.mark.slow  # a subprocess importing lightning: ~20 s on a busy 2-core machine
@pytest.mark.parametrize("sig, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_after_a_completed_run_does_not_kill_it_and_stops_the_next_run(sig, code):
    done = subprocess.run(
        [sys.executable, "-c", BETWEEN.format(sig=sig)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # the finished work's process ends normally (exit 0, not 143) ...
    assert done.returncode == 0 and "still here" in done.stdout, done.stderr
    assert f"{sig} received between runs" in done.stderr
    # ... and the next run of a sweep does not start (exit 130 / 143 in training.job)
    assert "trained" not in done.stdout
    assert (
        f"interrupted by {sig} before the run started (after the previous run ended) {code}"
        in done.stdout
    )
