"""DDP ranks started by torchrun (and, in test_slurm.py, by srun): every rank is recognised, only
rank 0 checks, locks and pins the run dir, the other ranks train into that same dir, and a launch
that rank 0 refuses stops every rank instead of leaving one waiting in DDP initialisation.
Real `torchrun -m tlbench` processes with 2 CPU ranks (gloo) and the files on disk afterwards."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.cli import TINY, TWO_STEPS
from tlbench.runtime import distributed, rank_zero

DDP = [*TINY, *TWO_STEPS, "trainer=ddp_cpu", "test_after_fit=false", "data.num_workers=0"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str, cwd: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    """`torchrun --nproc_per_node=2 -m tlbench ...` on its own port (static rendezvous, run id
    "none": the hardest case for telling launches apart)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]
    cmd += [f"--master_port={_free_port()}", "-m", "tlbench", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_rank_of_each_launcher(monkeypatch):
    """torchrun's RANK, srun's SLURM_PROCID (only with several tasks, and not in a job named
    bash/interactive, as Lightning decides), Lightning's LOCAL_RANK / NODE_RANK."""
    for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "TORCHELASTIC_RUN_ID", "SLURM_NTASKS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SLURM_PROCID", "0")
    monkeypatch.setenv("LOCAL_RANK", "1")  # Lightning's child inside a one-task allocation
    assert (distributed.launcher(), distributed.rank()) == (None, 1)
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("SLURM_NTASKS", "2")
    monkeypatch.setenv("SLURM_PROCID", "1")
    monkeypatch.setenv("SLURM_JOB_NAME", "python")
    assert (distributed.launcher(), distributed.rank()) == ("srun", 1)
    monkeypatch.setenv("SLURM_JOB_NAME", "interactive")
    assert distributed.launcher() is None
    monkeypatch.delenv("SLURM_NTASKS")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")
    monkeypatch.setenv("RANK", "1")
    assert (distributed.launcher(), distributed.rank()) == ("torchrun", 1)
    monkeypatch.setenv("RANK", "0")
    assert distributed.is_rank_zero() and rank_zero.follow() is None


@pytest.mark.slow
def test_torchrun_two_ranks_one_run_dir(tmp_path):
    """No hydra.run.dir: the timestamped default is pinned by rank 0 and used by rank 1 (two
    ranks a second apart would otherwise train into two dirs); one lock, one .hydra/, one
    summary.json that says ok; the launch note is gone afterwards."""
    done = torchrun(*DDP, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = list((tmp_path / "outputs" / "runs").iterdir())
    assert len(runs) == 1, runs
    run = runs[0]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "ok", summary.get("error")
    assert "MEMBER: 2/2" in done.stderr + done.stdout  # Lightning saw both ranks
    assert (run / ".hydra" / "overrides.yaml").is_file()
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert not (tmp_path / "outputs" / ".launches").exists()  # the note is gone


@pytest.mark.slow
def test_torchrun_refused_launch_stops_every_rank(tmp_path):
    """Rank 0 refuses a dir holding a completed run: rank 1 stops too (no DDP wait), and the
    dir is untouched."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"status": "ok"}))
    before = sorted(p.name for p in run.iterdir())
    done = torchrun(*DDP, f"hydra.run.dir={run}", cwd=tmp_path, timeout=180)
    assert done.returncode != 0
    assert "nothing was changed" in done.stderr  # rank 0's own paragraph
    assert "rank 1: rank 0 did not start training" in done.stderr
    assert sorted(p.name for p in run.iterdir()) == before


@pytest.mark.slow
def test_torchrun_resume_every_rank_runs_the_old_config(tmp_path):
    """`resume=<dir>` is rewritten into the old run's overrides by rank 0 only; rank 1 runs that
    rewritten command line (with the bare `resume=` it would build the default model and DDP
    would fail or hang), so the run continues to epoch 2 in its own dir."""
    run = tmp_path / "run"
    first = torchrun(*DDP, f"hydra.run.dir={run}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    again = torchrun(f"resume={run}", "trainer.max_epochs=2", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["epochs"] == 2, summary.get("error")
    assert summary["resumed_from"].endswith("last.ckpt")
    assert not (tmp_path / "outputs" / ".launches").exists()
