"""SLURM preemption without the daemons (the real cluster's tests: test_slurm_requeue.py): the
environment SLURM gives a job (SLURM_JOB_ID, then SLURM_RESTART_COUNT on its requeued attempt)
and the signal it sends (SIGUSR2). The first attempt saves and ends `interrupted` (exit 140);
the requeued attempt, the same command line, continues from last.ckpt; a further attempt after
the run completed trains nothing. Lightning's own SLURM requeue is off."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.cli import TWO_STEPS
from tlbench import cluster
from tlbench.runtime import signals

RUN = [
    *TWO_STEPS,
    "data.samples_per_class=30",  # ~19 steps an epoch: a signal lands inside one
    "data.image_size=32",
    "data.batch_size=16",
    "trainer.max_epochs=5",
    "trainer.enable_progress_bar=false",
    "logger=tensorboard",
    "test_after_fit=false",
]


def _tlbench(run_dir: Path, restarts: int) -> subprocess.Popen:
    env = {"SLURM_JOB_ID": "77", "SLURM_RESTART_COUNT": str(restarts), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "tlbench", *RUN, f"hydra.run.dir={run_dir}"],
        cwd=run_dir.parent,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _epochs(run_dir: Path) -> int:
    try:
        return len((run_dir / "metrics.csv").read_text().splitlines()) - 1
    except OSError:
        return 0


@pytest.mark.slow  # 10-40 s of subprocesses; make test-full runs it
def test_sigusr2_saves_and_the_requeued_attempt_continues(tmp_path):
    run_dir = tmp_path / "run"
    first = _tlbench(run_dir, restarts=0)
    end = time.monotonic() + 240
    while _epochs(run_dir) < 2:
        assert first.poll() is None and time.monotonic() < end, first.communicate()[1][-3000:]
        time.sleep(0.05)
    first.send_signal(signal.SIGUSR2)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 128 + signal.SIGUSR2, err[-3000:]
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["status"] == "interrupted", s.get("error")
    assert "preempted" in s["error"] and "requeued SLURM job continues by itself" in s["error"]
    assert s["segments"][0]["slurm_job_id"] == "77"

    again = _tlbench(run_dir, restarts=1)  # what SLURM starts after the requeue
    _, err = again.communicate(timeout=240)
    assert again.returncode == 0, err[-3000:]
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["status"] == "ok" and s["resumed_from"].endswith("last.ckpt")
    assert [g["slurm_restart_count"] for g in s["segments"]] == [0, 1]
    assert 5 <= sum(g["epochs"] for g in s["segments"]) <= 6  # at most the epoch in progress
    with open(run_dir / "metrics.csv", newline="") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == list(range(5))

    last = (run_dir / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    third = _tlbench(run_dir, restarts=2)  # requeued once more after it finished: nothing to do
    _, err = third.communicate(timeout=240)
    assert third.returncode == 0, err[-3000:]
    assert (run_dir / "checkpoints" / "last.ckpt").stat().st_mtime_ns == last
    assert json.loads((run_dir / "summary.json").read_text())["segments"] == s["segments"]


def test_sigusr2_is_trapped_inside_a_slurm_job_only(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    assert signal.SIGUSR2 not in signals.handled()  # outside SLURM: its default action stays
    monkeypatch.setenv("SLURM_JOB_ID", "5")
    assert signals.handled()[-1] == signal.SIGUSR2
    assert cluster.attempt() == {"slurm_job_id": "5", "slurm_restart_count": 0}


def test_lightning_slurm_auto_requeue_is_off_inside_a_slurm_job(monkeypatch, tmp_path):
    """Lightning's own requeue (SIGUSR1, hpc_ckpt files restored at the next start) would
    compete with tlbench's: inside a SLURM job the trainer's environment has it off."""
    from tlbench.training.trainer import _cluster_plugins

    for k, v in {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "submitit", "SLURM_JOB_ID": "5"}.items():
        monkeypatch.setenv(k, v)
    (env,) = _cluster_plugins()
    assert env.auto_requeue is False
    monkeypatch.setenv("SLURM_JOB_NAME", "bash")  # an interactive allocation: Lightning's rule
    assert _cluster_plugins() == []


def test_lightnings_srun_hint_is_kept_only_inside_a_slurm_job(cfg_factory, monkeypatch, tmp_path):
    """Lightning warns that `srun` "is available but not used" wherever SLURM's tools are
    installed: every run on a login node or workstation printed it. Inside an allocation (tasks
    started without srun hang) it stays."""
    import os
    import warnings

    from tlbench.training.trainer import build_trainer

    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "srun").write_text("#!/bin/sh\nexit 1\n")
    (tools / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    for key in ("SLURM_JOB_ID", "SLURM_NTASKS", "SLURM_JOB_NAME"):
        monkeypatch.delenv(key, raising=False)
    for job, expected in ((None, []), ("5", ["srun"])):
        if job:
            monkeypatch.setenv("SLURM_JOB_ID", job)  # an allocation, this step without srun
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            build_trainer(cfg_factory("logger=none"), tmp_path / f"run{job}", None, "32-true")
        hints = ["srun" for w in seen if "The `srun` command is available" in str(w.message)]
        assert hints[:1] == expected


def test_a_slurm_job_uses_no_more_threads_than_its_cpus(monkeypatch):
    """Jobs sharing a node must not each start one thread per core (oversubscription); an
    OMP_NUM_THREADS the user set wins, and outside SLURM nothing changes."""
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
        monkeypatch.delenv("SLURM_JOB_ID", raising=False)
        assert cluster.fit_threads_to_allocation() is None  # not in a SLURM job
        monkeypatch.setenv("SLURM_JOB_ID", "9")
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert cluster.fit_threads_to_allocation() is None and torch.get_num_threads() == 2
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert cluster.fit_threads_to_allocation() == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
