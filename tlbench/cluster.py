"""The SLURM job this process runs in, read from the environment SLURM sets (floor 1: the config,
runtime and training layers all ask it).

Preemption and the time limit arrive as SIGUSR2 (`PREEMPT_SIGNAL`); a requeued attempt
(SLURM_RESTART_COUNT > 0, `requeued()`) continues its run dir's unfinished run from
checkpoints/last.ckpt, and threads follow `cpus_per_task`.
Why: docs/architecture.md, "SLURM, interruption and requeue".
"""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger("tlbench")
PREEMPT_SIGNAL = signal.SIGUSR2  # submitit's default (hydra.launcher.signal_delay_s before the end)


def job_id() -> str | None:
    """The SLURM job id (an array task's own id: <array job>_<task>), None outside SLURM."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID") or None


def restart_count() -> int:
    """How often SLURM requeued this job (0: its first attempt, or not SLURM)."""
    value = os.environ.get("SLURM_RESTART_COUNT", "0")
    return int(value) if value.isdigit() else 0


def requeued() -> bool:
    """This process belongs to a requeued attempt of a SLURM job: its run continues."""
    return restart_count() > 0


def attempt() -> dict:
    """What a run's segment records about the SLURM attempt it ran in ({} outside SLURM)."""
    jid = job_id()
    return {"slurm_job_id": jid, "slurm_restart_count": restart_count()} if jid else {}


def fit_threads_to_allocation() -> int | None:
    """Inside a SLURM job, use no more intra-op threads than the job's CPUs (cpus_per_task):
    torch otherwise starts one per core of the node, and jobs sharing a node then oversubscribe
    it (BENCHMARKS.md, "Small measurements"). An OMP_NUM_THREADS the user set wins.
    Returns the thread count set, or None when nothing changed."""
    cpus = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if job_id() is None or not cpus.isdigit() or "OMP_NUM_THREADS" in os.environ:
        return None
    import torch

    if torch.get_num_threads() <= int(cpus):
        return None
    torch.set_num_threads(int(cpus))
    log.info("SLURM job with %s CPUs per task: torch uses %s threads", cpus, cpus)
    return int(cpus)
