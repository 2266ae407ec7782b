"""tlbench on a real SLURM (a throwaway single-node cluster: tests/helpers/slurm.py; skipped,
saying how to enable it, where slurm-wlm and munge are not installed). `srun` starts the DDP
ranks as a cluster user's sbatch script would: every rank recognised by SLURM_PROCID, rank 0
owns the run dir, both train into it, and a refused launch stops both ranks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.cli import TINY, TWO_STEPS

pytestmark = pytest.mark.slurm

DDP = [*TINY, *TWO_STEPS, "trainer=ddp_cpu", "test_after_fit=false", "data.num_workers=0"]


def srun(cluster, *args: str, cwd: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    cmd = ["srun", "-N1", "--ntasks-per-node=2", "--time=5", *args]
    env = {**cluster.env, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_cluster_is_up(slurm_cluster, tmp_path):
    """The fixture's cluster: one idle node, srun runs two tasks with their own SLURM_PROCID."""
    state = subprocess.run(
        ["sinfo", "-h", "-o", "%t %D"], env=slurm_cluster.env, capture_output=True, text=True
    )
    assert state.stdout.split() == ["idle", "1"], state.stderr + slurm_cluster.log()
    done = srun(slurm_cluster, "printenv", "SLURM_PROCID", cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr + slurm_cluster.log()
    assert sorted(done.stdout.split()) == ["0", "1"]


def test_srun_ddp_two_ranks_one_run_dir(slurm_cluster, tmp_path):
    """`srun --ntasks-per-node=2 python -m tlbench trainer=ddp_cpu` with the default timestamped
    run dir: one dir, rank 0's summary says ok, Lightning saw both ranks, no note left."""
    done = srun(slurm_cluster, sys.executable, "-m", "tlbench", *DDP, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = list((tmp_path / "outputs" / "runs").iterdir())
    assert len(runs) == 1, runs
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert summary["status"] == "ok", summary.get("error")
    assert "MEMBER: 2/2" in done.stderr + done.stdout
    assert (runs[0] / "checkpoints" / "last.ckpt").is_file()
    assert not (tmp_path / "outputs" / ".launches").exists()  # the note is gone


def test_srun_refused_launch_stops_every_rank(slurm_cluster, tmp_path):
    """Rank 0 refuses a dir holding a summary.json tlbench did not write: rank 1 stops at once too, instead of
    waiting in DDP initialisation until the job's time limit; the dir is untouched."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"status": "ok"}))  # not tlbench's
    done = srun(
        slurm_cluster,
        sys.executable,
        "-m",
        "tlbench",
        *DDP,
        f"hydra.run.dir={run}",
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode != 0
    assert "nothing was changed" in done.stderr
    assert "rank 1: rank 0 did not start training" in done.stderr
    assert [p.name for p in run.iterdir()] == ["summary.json"]


@pytest.mark.slow  # ~30 s: submitit's sbatch, polling and the sweep's report
def test_submitit_tasks_per_node_ddp(slurm_cluster, tmp_path):
    """`hydra/launcher=slurm hydra.launcher.tasks_per_node=2 trainer=ddp_cpu`: submitit's srun
    starts both ranks inside the job; rank 1 (SLURM_PROCID=1) takes no lock and writes no
    summary; the job ends ok and the sweep's report lists it."""
    sweep = tmp_path / "sweep"
    launcher = [
        "hydra/launcher=slurm",
        "hydra.launcher.tasks_per_node=2",
        "hydra.launcher.gpus_per_node=0",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=1",
        "hydra.launcher.timeout_min=5",
    ]
    done = subprocess.run(
        [sys.executable, "-m", "tlbench", "-m", *launcher, f"hydra.sweep.dir={sweep}", *DDP],
        cwd=tmp_path,
        env={**slurm_cluster.env, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:] + slurm_cluster.log()
    summary = json.loads((sweep / "0" / "summary.json").read_text())
    assert summary["status"] == "ok", summary.get("error")
    logs = "".join(p.read_text() for p in (sweep / ".submitit").rglob("*_log.err"))
    assert "MEMBER: 2/2" in logs
    assert (sweep / "report.md").is_file()
