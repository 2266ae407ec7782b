"""DDP on one machine (`trainer=ddp_cpu`, or `trainer.devices=N` on GPUs) without the Hydra pitfall
of duplicated output dirs (lightning-hydra-template #393, Lightning #11300).

Before `fit`, `prepare_children()` makes the command line Lightning re-runs for ranks > 0 that of
*this job alone* and points HydraConfig's run dir at the job's dir; `finish()` tears the process
group down so the next job of a sweep can start its own. Ranks started by srun or torchrun are
recognised by `rank()` (runtime.rank_zero). Why: docs/architecture.md, "DDP launches".
"""

from __future__ import annotations

import os
import sys


def launcher() -> str | None:
    """The outside launcher that started this process as one of several ranks: "srun" (one
    task per rank, SLURM_NTASKS > 1; Lightning's SLURMEnvironment treats a job named bash or
    interactive as not launched by srun, and so does this), "torchrun", or None (one process,
    or Lightning's own launcher re-running the command line with LOCAL_RANK set)."""
    env = os.environ
    if env.get("TORCHELASTIC_RUN_ID") is not None and env.get("RANK", "").isdigit():
        return "torchrun"
    tasks = env.get("SLURM_NTASKS", "1")
    if (
        tasks.isdigit()
        and int(tasks) > 1
        and env.get("SLURM_PROCID", "").isdigit()
        and env.get("SLURM_JOB_NAME") not in ("bash", "interactive")
    ):
        return "srun"
    return None


def rank() -> int:
    """Global rank from the launcher's environment (0 outside distributed runs): torchrun's RANK,
    srun's SLURM_PROCID, else Lightning's NODE_RANK / LOCAL_RANK (its children inherit any
    SLURM_PROCID=0 of the allocation, so that one is read only for srun's own ranks)."""
    kind = launcher()
    if kind == "torchrun":
        return int(os.environ["RANK"])
    if kind == "srun":
        return int(os.environ["SLURM_PROCID"])
    if os.environ.get("RANK", "").isdigit():
        return int(os.environ["RANK"])
    node = int(os.environ.get("NODE_RANK", "0") or 0)
    local = int(os.environ.get("LOCAL_RANK", "0") or 0)
    return node * 1000 + local  # only "is it zero" matters here


def is_rank_zero() -> bool:
    return rank() == 0


def prepare_children() -> None:
    """Make Lightning's re-run of the command line reproduce this job only (see module doc)."""
    from omegaconf import open_dict, read_write

    from tlbench.config import runtime as hydra_runtime

    if not hydra_runtime.is_multirun():
        return  # a single run (or no Hydra app): Lightning re-runs sys.argv as is
    hc = hydra_runtime.hydra_config()
    sys.argv = [sys.argv[0], *hydra_runtime.task_overrides()]
    with read_write(hc), open_dict(hc):
        hc.run.dir = hc.runtime.output_dir


def finish() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
