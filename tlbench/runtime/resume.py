"""Continue a killed run in its own directory, and skip or finish the jobs of a re-run sweep.

`resume=<run dir>`: the old run's overrides, then those typed now (only RESUMABLE keys may
differ), then `hydra.run.dir=<run dir>`; training continues from `checkpoints/last.ckpt`.
`skip_completed=true`: a job whose dir holds an ok run with the same overrides returns its
summary; an unfinished one continues. Why: docs/architecture.md, "Resume and interruption".
"""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

from omegaconf import DictConfig

from tlbench import cluster
from tlbench import summary_file as run_summary
from tlbench.config import runtime as hydra_runtime
from tlbench.config.key_roles import ROLES
from tlbench.config.overrides import parse as parse_override
from tlbench.errors import TlbenchError
from tlbench.runtime import distributed, owned, rundir
from tlbench.summary_file import RunSummary

log = logging.getLogger("tlbench")

LAST = Path("checkpoints") / "last.ckpt"
OWN_KEYS = ("resume", "skip_completed", "overwrite")  # steer resuming, not the experiment
# Keys a resume may change (config.key_roles): where and how fast it runs, how long, what it shows
# -- never what is trained (model, strategy, data, optimizer, scheduler, seed...).
RESUMABLE = tuple(k for k, r in ROLES.items() if r.resumable and k not in OWN_KEYS)
DIR_KEYS = ("hydra.run.", "hydra.sweep.", "hydra.mode", "hydra.job.")  # where/how, not what


def hydra_quote(value: str) -> str:
    """A path as a Hydra override value (quoted when it holds grammar characters)."""
    if re.fullmatch(r"[\w./:~+-]+", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def arg_value(argv: list[str], key: str) -> str | None:
    """The last value `key=` was given on the command line (quotes removed), else None."""
    found = None
    for a in argv:
        if "=" in a and a.partition("=")[0] == key:
            found = parse_override(a)[1].strip("'\"")
    return found


def completed_summary(run_dir: Path) -> RunSummary | None:
    try:
        s = run_summary.read(run_dir)
    except (OSError, ValueError):
        return None
    return s if s.status == "ok" else None


def defining_overrides(given) -> list[str]:
    """The overrides that define a run, sorted (not where it runs, not how it resumes): a run
    dir reused for another definition is refused (runtime.targets)."""
    return sorted(
        o
        for o in given
        if parse_override(o)[0] not in OWN_KEYS and not o.startswith(("hydra.", "hydra/"))
    )


def is_ddp_child() -> bool:
    """A DDP rank > 0, however it was started (Lightning re-running the command line with
    LOCAL_RANK set, torchrun's RANK, srun's SLURM_PROCID: runtime.distributed.rank): it must not
    rewrite the command line, check, lock or claim the dirs: rank 0 does (runtime.rank_zero)."""
    return distributed.rank() != 0


# -- train(): inside the job ------------------------------------------------------------------
def continues(cfg: DictConfig) -> bool:
    """This job picks up its own dir's earlier work: `skip_completed=true`, or a requeued attempt
    of a SLURM job (preempted or at its time limit: tlbench.cluster) -- never with resume=."""
    return bool(cfg.get("skip_completed") or cluster.requeued()) and not cfg.get("resume")


def completed(cfg: DictConfig, run_dir: Path) -> RunSummary | None:
    """With skip_completed=true (or in a requeued SLURM job), the summary of this job's finished
    earlier run (else None)."""
    if not continues(cfg):
        return None
    done = completed_summary(run_dir)
    if done is None:
        return None
    now = hydra_runtime.task_overrides()
    if now and defining_overrides(done.overrides or []) != defining_overrides(now):
        raise TlbenchError(
            f"{run_dir} holds a completed run with other overrides "
            f"({' '.join(defining_overrides(done.overrides or []))}); it was left untouched",
            key="skip_completed",
            value=True,
            fix="use a new hydra.sweep.dir / hydra.run.dir for a different experiment",
        )
    why = "skip_completed=true" if cfg.get("skip_completed") else "a requeued SLURM job"
    print(f"tlbench: skipped {run_dir} (already completed; {why})", flush=True)
    return done


def lock(run_dir: Path) -> rundir.Lock | rundir.NoLock:
    """Hold the run dir's lock for this run (DDP ranks > 0: their parent holds it)."""
    if is_ddp_child():
        return rundir.NoLock()
    lock = rundir.Lock(run_dir, key="hydra.run.dir").acquire()  # python -m tlbench: taken already
    owned.claim(run_dir)  # train(cfg) called directly: the dir is claimed here
    return lock


def source(cfg: DictConfig) -> Path | None:
    """The run dir this job continues: `resume=<dir>`, or with skip_completed=true (or in a
    requeued SLURM job) this job's own dir when it holds an unfinished run with the same
    overrides and a last.ckpt."""
    if cfg.get("resume"):
        return Path(str(cfg.resume)).expanduser()
    if not continues(cfg):
        return None
    run_dir = Path(cfg.paths.output_dir)
    if rundir.state(run_dir) != "unfinished" or not (run_dir / LAST).is_file():
        return None
    saved = run_summary.read(run_dir).overrides if rundir.status(run_dir) else None
    if saved is not None and defining_overrides(saved) != defining_overrides(
        hydra_runtime.task_overrides()
    ):
        return None  # check_targets refuses this before Hydra starts
    return run_dir


def carried(cfg: DictConfig) -> dict:
    """What a continued run keeps from its earlier segments' summary.json: `segments` (one per
    earlier part that recorded its time; a part killed by SIGKILL could not)."""
    src = source(cfg)
    if src is None:
        return {}
    try:
        old = run_summary.read(src)
    except (OSError, ValueError):
        return {"segments": []}
    segments = list(old.segments or [])
    if not segments and old.fit_seconds is not None:  # written before segments existed
        segments = [{"fit_seconds": old.fit_seconds, "epochs": old.epochs}]
    return {"segments": segments}


def checkpoint(cfg: DictConfig) -> str | None:
    """What `trainer.fit(ckpt_path=...)` gets: last.ckpt of the continued run, else cfg.ckpt_path."""
    src = source(cfg)
    if src is not None:
        last = src / LAST
        if last.is_file():
            return str(last)
        log.warning(
            "resume: %s does not exist (killed before its first epoch ended); "
            "training starts from scratch",
            last,
        )
        return None
    return cfg.get("ckpt_path")


RESUME_FIX = (
    "the run's last.ckpt is damaged or was not written by tlbench: start the run again with "
    "overwrite=true, or resume another run dir"
)


def _epochs_done(ckpt: str | None) -> int:
    """How many epochs a Lightning checkpoint holds; 0 without one."""
    if not ckpt:
        return 0
    from tlbench import safe_load  # a truncated or planted last.ckpt: one paragraph

    state = safe_load.read(ckpt, "resume", fix=RESUME_FIX, mmap=True)
    # Saved at the end of epoch e (on validation end): training continues with epoch e + 1.
    return int(state.get("epoch", -1)) + 1


def logger_kwargs(cfg: DictConfig, node, ckpt: str | None) -> dict:
    """For a resumed run's TensorBoard logger: drop the old events from `purge_step` on. Every
    event's step is its epoch (TransferModule._log_epoch_axis), so the purge starts at the first
    epoch the checkpoint does not hold: the one this segment re-runs."""
    if source(cfg) is None or not str(node.get("_target_", "")).endswith("TensorBoardLogger"):
        return {}
    return {"purge_step": _epochs_done(ckpt)}


def previous_rows(cfg: DictConfig, path: Path, ckpt: str | None) -> list[dict]:
    """metrics.csv rows of the epochs the checkpoint already holds (the rest is re-run)."""
    if source(cfg) is None or not Path(path).is_file():
        return []
    epochs = _epochs_done(ckpt)
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            parsed = {
                k: (
                    None
                    if v in ("", None)
                    else int(float(v))
                    if k in ("epoch", "step")
                    else float(v)
                )
                for k, v in row.items()
            }
            if parsed.get("epoch") is not None and parsed["epoch"] < epochs:
                rows.append(parsed)
    return rows


def finish(run_dir: Path, summary: RunSummary) -> None:
    """A run that ended ok: an `interrupted.ckpt` left by an earlier, interrupted segment is stale
    (a resume continues from last.ckpt; a reader taking it for the run's state would get an older
    model), so it goes."""
    if summary.status == "ok":
        (Path(run_dir) / "checkpoints" / "interrupted.ckpt").unlink(missing_ok=True)
