"""The dirs a `python -m tlbench` launch will write, worked out before Hydra starts, and taking
them: place checks, then every lock, then the caller's checks under the locks, then the claim.
If any step refuses, the locks are released and the folders that locking created are removed,
so a refused start leaves nothing behind (tlbench.runtime.launch.check_targets is the caller;
the lock design is in tlbench.runtime.rundir's module doc). The checks of one run/job dir are at
the end: its state (completed / unfinished work), its contents (runtime.owned) and, for a sweep
job, that it is the same job as before.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from tlbench import summary_file as run_summary
from tlbench.errors import TlbenchError
from tlbench.runtime import owned, rundir
from tlbench.runtime.resume import arg_value, defining_overrides

COMPOSE_LIMIT = 64  # as preflight (the cost of one composed job: BENCHMARKS.md)


@dataclass
class Target:
    dir: Path
    key: str  # the override that chose it, for messages
    value: str
    kind: str  # "run", "resume", "job" or "sweep" (a sweep's own dir: locked, never cleared)
    hold: bool = True  # see rundir.Lock.acquire
    num: int | None = None  # a sweep job's number
    overrides: list[str] | None = None  # a sweep job's overrides


def absolute(value: str) -> Path:
    """Where Hydra puts a dir given as `value` (relative to the working dir), `~` expanded."""
    return Path(os.path.abspath(os.path.expanduser(value)))


def composed(overrides: list[str]) -> DictConfig | None:
    """The job's config with its hydra node (None when it does not compose: preflight says why)."""
    from tlbench.config import compose

    try:
        return compose(overrides, return_hydra_config=True)
    except Exception:
        return None


def data_dirs(cfg: DictConfig | None) -> list[Path]:
    """The dataset folders a job reads (data.root / train_dir / val_dir / test_dir)."""
    from tlbench.config.data_values import DATA_DIR_KEYS
    from tlbench.data.files import resolve

    found = []
    for key in DATA_DIR_KEYS if cfg is not None else ():
        try:
            value = OmegaConf.select(cfg, f"data.{key}", throw_on_resolution_failure=True)
        except Exception:
            continue
        if value:
            found.append(resolve(str(value)))
    return found


def default_dir(cfg: DictConfig | None, key: str) -> Path:
    """The timestamped default of `key` (conf/hydra/default.yaml) resolved now, so that it can be
    checked, locked and handed to Hydra pinned; `_<n>` is appended while that dir exists (two
    runs started in the same second no longer share one dir)."""
    from datetime import datetime

    kind = "multiruns" if "sweep" in key else "runs"
    fallback = f"outputs/{kind}/{datetime.now():%Y-%m-%d_%H-%M-%S}"
    try:
        value = str(OmegaConf.select(cfg, key, throw_on_resolution_failure=True) or fallback)
        parent, _, leaf = key.rpartition(".")
        raw = str(OmegaConf.to_container(OmegaConf.select(cfg, parent), resolve=False)[leaf])
    except Exception:
        value = raw = fallback
    base = absolute(value)
    if "${now:" not in raw and raw != fallback:  # a fixed dir (e.g. set by a preset): as given
        return base
    candidates = [base] + [base.with_name(f"{base.name}_{n}") for n in range(1, 100)]
    return next((c for c in candidates if not c.exists()), candidates[-1])


def job_dirs(base: Path, subdir: str | None, jobs: list[list[str]]) -> list[Path] | None:
    """Each job's dir, as Hydra's basic launcher will name it (None: cannot be worked out)."""
    if subdir is None:  # conf/hydra/default.yaml: ${hydra.job.num}
        return [base / str(n) for n in range(len(jobs))]
    if len(jobs) > COMPOSE_LIMIT:
        return None
    dirs = []
    for num, overrides in enumerate(jobs):
        cfg = composed(overrides)
        if cfg is None:
            return None
        with open_dict(cfg):
            cfg.hydra.job.num = cfg.hydra.job.id = num
        try:
            name = OmegaConf.select(cfg, "hydra.sweep.subdir", throw_on_resolution_failure=True)
        except Exception:
            return None
        dirs.append(Path(os.path.normpath(base / str(name))))
    return dirs


def check_distinct(dirs: list[Path], key: str, value: str) -> None:
    """Two jobs mapped to one dir: the second would overwrite the first."""
    seen: dict[Path, int] = {}
    for num, d in enumerate(dirs):
        if d in seen:
            raise TlbenchError(
                f"jobs {seen[d]} and {num} of this sweep would both write into {d}, the second "
                "overwriting the first (nothing was changed)",
                key=key,
                value=value,
                fix="give each job its own dir: leave hydra.sweep.subdir at its default "
                "(${hydra.job.num}) or use one that differs per job, e.g. "
                "hydra.sweep.subdir='${hydra.job.override_dirname}'",
            )
        seen[d] = num


def run_targets(argv: list[str], cfg, key: str) -> list[Target]:
    """The run dir (or the sweep's own dir), and paths.output_dir when it is set outright."""
    given = arg_value(argv, key)
    where = absolute(given) if given is not None else default_dir(cfg, key)
    value = given if given is not None else str(where)
    kind = "sweep" if key == "hydra.sweep.dir" else "run"
    group = [Target(where, key, value, kind)]
    out = arg_value(argv, "paths.output_dir")  # set outright, tlbench's files go there
    if kind == "run" and out and "${" not in out and absolute(out) != where:
        group.append(Target(absolute(out), "paths.output_dir", out, "run"))
    return group


def job_targets(argv: list[str], jobs, sweep: Target) -> list[Target]:
    """The sweep's job dirs (none when they cannot be worked out: each job's own lock then)."""
    if not jobs:
        return []
    out = arg_value(argv, "paths.output_dir")
    if out and "${" not in out:  # every job would write into that one dir
        dirs = [absolute(out)] * len(jobs)
    else:
        dirs = job_dirs(sweep.dir, arg_value(argv, "hydra.sweep.subdir"), jobs) or []
    check_distinct(dirs, sweep.key, sweep.value)
    return [
        Target(d, sweep.key, sweep.value, "job", hold=False, num=n, overrides=jobs[n])
        for n, d in enumerate(dirs)
    ]


def _first_missing(path: Path) -> Path | None:
    """The topmost folder of `path` that does not exist yet (what locking will create)."""
    missing = None
    for p in [path, *path.parents]:
        if p.exists():
            break
        missing = p
    return missing


def _remove_created(path: Path, top: Path | None) -> None:
    """Remove the empty folders from `path` up to `top` (those locking created)."""
    if top is None:
        return
    for p in [path, *path.parents]:
        try:
            p.rmdir()
        except OSError:
            return
        if p == top:
            return


CREATED: list[tuple[Path, Path]] = []  # (dir, topmost folder its locking created) of this launch


def remove_unused() -> None:
    """The dirs this launch created that still hold nothing but tlbench's manifest: removed."""
    for path, top in reversed(CREATED):
        try:
            if {p.name for p in path.iterdir()} <= {owned.MANIFEST}:
                (path / owned.MANIFEST).unlink(missing_ok=True)
                _remove_created(path, top)
        except OSError:
            continue


def take(targets: list[Target], data: list[Path], check: Callable[[Target], None]) -> None:
    """Place checks, every lock, `check(target)` for each under the locks, then the claims;
    on a refusal nothing stays behind (see the module doc)."""
    for t in targets:
        owned.check_place(t.dir, t.key, t.value, data)
        rundir.check_writable(t.dir, t.key)
    taken, made = [], []
    try:
        for t in targets:
            made.append((t.dir, _first_missing(t.dir)))
            taken.append(rundir.Lock(t.dir, t.key).acquire(hold=t.hold))
        for t in targets:
            check(t)
        for t in targets:
            if t.kind != "sweep":
                owned.claim(t.dir)
        CREATED.extend((path, top) for path, top in made if top is not None)
    except BaseException:
        for lock in taken:
            lock.release()
        for path, top in reversed(made):
            _remove_created(path, top)
        raise


# -- the checks of one run/job dir, under its lock ---------------------------------------------
def _refuse_unfinished(where: Path, key: str, value: str, sweep: bool) -> TlbenchError:
    what = f"job {where.name} of this sweep" if sweep else "this run dir"
    return TlbenchError(
        f"{what} holds an unfinished run (summary.json says {rundir.status(where) or 'nothing'}, "
        f"in {where}); training into it again would mix two attempts (nothing was changed)",
        key=key,
        value=value,
        fix=(
            "add skip_completed=true to continue unfinished jobs from their last.ckpt and skip "
            "finished ones, overwrite=true to start the sweep again (deletes what tlbench wrote in "
            "the job dirs), or "
            "choose a new hydra.sweep.dir"
            if sweep
            else f"continue it with {shlex.quote(f'resume={where}')}, start it again with "
            "overwrite=true (deletes what tlbench wrote there first), or choose a new hydra.run.dir"
        ),
    )


def check_one(run_dir: Path, key: str, value: str, skip: bool, overwrite: bool, sweep: bool):
    """Whether a run/job dir may be trained into (raises if not): its state, or "overwrite"."""
    info = rundir.holder(run_dir)
    if info is not None:
        raise rundir.busy_error(run_dir, info, key)
    owned.inspect(run_dir, key, value, overwrite)  # foreign files, planted links
    found = rundir.state(run_dir)
    if found == "empty" or skip:
        return found
    if overwrite:
        return "overwrite"  # cleared by the caller once every dir of the launch passed
    if found == "unfinished":
        raise _refuse_unfinished(run_dir, key, value, sweep)
    if sweep:
        raise TlbenchError(
            f"the sweep dir already holds completed jobs (e.g. {run_dir}); running the sweep "
            "again would overwrite them (nothing was changed)",
            key=key,
            value=value,
            fix="add skip_completed=true to run only the unfinished jobs, overwrite=true to run "
            "them all again, or choose a new hydra.sweep.dir",
        )
    raise TlbenchError(
        "this run dir already holds a completed run; starting again would overwrite it "
        "(nothing was changed)",
        key=key,
        value=value,
        fix="choose a new hydra.run.dir, add skip_completed=true to keep it, or overwrite=true "
        "to train it again from scratch (deletes what tlbench wrote there first)",
    )


def _saved_summary_overrides(run_dir: Path) -> list[str] | None:
    """The overrides a job's summary.json recorded (None: no readable summary, e.g. only
    checkpoints of a job killed before it could write one)."""
    try:
        return run_summary.read(run_dir).overrides
    except (OSError, ValueError):
        return None


def job_check(t: Target, skip: bool, overwrite: bool, base: str) -> str:
    """A sweep job's dir: as a run dir, and a finished/unfinished job must be the same job."""
    found = check_one(t.dir, t.key, base, skip, overwrite, sweep=True)
    saved = _saved_summary_overrides(t.dir) if found in ("ok", "unfinished") else None
    now = defining_overrides(t.overrides or [])
    if saved is not None and defining_overrides(saved) != now:
        raise TlbenchError(
            f"job {t.num} of this sweep ran with other overrides "
            f"({' '.join(defining_overrides(saved))}) than it has now "
            f"({' '.join(now)}); skipping, continuing or redoing it would "
            "mix up the sweep (nothing was changed)",
            key="hydra.sweep.dir",
            value=base,
            fix="re-run the sweep with exactly the same values in the same order, "
            "overwrite=true to start it again, or use a new hydra.sweep.dir",
        )
    return found
