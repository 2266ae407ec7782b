"""Before Hydra starts (`tlbench.cli.train_main`): turn `resume=<dir>` into the old run's command
line after checking what was typed with it, and refuse output dirs that would be poisoned or
mixed (completed or unfinished work, a live lock, no write permission, foreign files for
overwrite=true, a place that holds something else). Nothing in a run dir is written before these
checks pass; then `check_targets` holds every dir's lock for the launch (runtime.rundir's module
doc) and returns the command line with the run/sweep dir pinned, so Hydra writes exactly where
it was checked. The resume design is in tlbench.runtime.resume's module doc.
"""

from __future__ import annotations

import atexit
import os
import shlex
from pathlib import Path

from omegaconf import OmegaConf

from tlbench import cluster
from tlbench.config.key_roles import is_resumable
from tlbench.config.overrides import INFO_FLAGS, split_argv
from tlbench.config.overrides import parse as parse_override
from tlbench.errors import TlbenchError
from tlbench.runtime import owned, rank_zero, rundir, targets
from tlbench.runtime.resume import (
    DIR_KEYS,
    LAST,
    OWN_KEYS,
    RESUMABLE,
    arg_value,
    completed_summary,
    hydra_quote,
    is_ddp_child,
)

_EXIT_HOOK = False  # rundir.release_all registered to run at exit


# -- main(): before Hydra ---------------------------------------------------------------------
def _run_dir_of(value: str) -> Path:
    run_dir = Path(value).expanduser().resolve()
    if not (run_dir / ".hydra" / "overrides.yaml").is_file():
        raise TlbenchError(
            "not a tlbench run dir (it has no .hydra/overrides.yaml)",
            key="resume",
            value=value,
            allowed="a run dir written by `python -m tlbench` (outputs/runs/<time> or a sweep's <n>/)",
            fix="point resume= at the directory that holds the run's summary.json and .hydra/",
        )
    return run_dir


def _saved_overrides(run_dir: Path) -> tuple[list[str], list[str]]:
    """(hydra overrides that are not about directories, task overrides) the run was started with."""
    old = [str(o) for o in OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")]
    old = [o for o in old if parse_override(o)[0] not in OWN_KEYS]
    hydra_old = []
    hydra_yaml = run_dir / ".hydra" / "hydra.yaml"
    if hydra_yaml.is_file():
        h = OmegaConf.load(hydra_yaml)
        hydra_old = [
            str(o)
            for o in OmegaConf.select(h, "hydra.overrides.hydra", default=[]) or []
            if not str(o).startswith(DIR_KEYS)
        ]
    return hydra_old, old


def _flat(node, prefix: str = "") -> dict:
    if not isinstance(node, dict):
        return {prefix: node}
    out = {}
    for k, v in node.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def _composed(overrides: list[str]) -> dict | None:
    """The unresolved config of these task overrides; None when they do not compose (preflight
    then reports Hydra's error as one paragraph)."""
    from tlbench.config import compose

    try:
        cfg = compose([o for o in overrides if not o.startswith(("hydra.", "hydra/"))])
    except Exception:
        return None
    return OmegaConf.to_container(cfg, resolve=False)


def _check_changes(run_dir: Path, before: dict, after: dict, value: str) -> None:
    """Refuse overrides that change the experiment of the run being resumed."""
    a, b = _flat(before), _flat(after)
    changed = sorted(
        k
        for k in set(a) | set(b)
        if a.get(k, "<absent>") != b.get(k, "<absent>") and not is_resumable(k)
    )
    if changed:
        shown = ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in changed[:6])
        more = f" and {len(changed) - 6} more" if len(changed) > 6 else ""
        raise TlbenchError(
            f"the overrides given with resume= change the experiment of that run ({shown}{more}); "
            "its checkpoint was trained with the old values, so resuming would fail or mix two "
            f"experiments in one dir (nothing in {run_dir} was changed)",
            key="resume",
            value=value,
            allowed="overrides of " + ", ".join(RESUMABLE),
            fix="resume with only those (e.g. trainer.max_epochs=N), or start a new run with the "
            "new values in a new hydra.run.dir",
        )


def _check_epochs(run_dir: Path, after: dict | None, value: str) -> None:
    """A trainer.max_epochs below the epochs last.ckpt already holds cannot be honoured: refused
    before anything in the dir changes (the audit's `resume=<dir> trainer.max_epochs=4` after 9
    epochs failed inside fit and flipped the run's summary to failed)."""
    from tlbench.runtime.resume import _epochs_done

    if not (run_dir / LAST).is_file():
        return
    trained = _epochs_done(str(run_dir / LAST))  # damaged or planted: one paragraph, now
    target = OmegaConf.select(OmegaConf.create(after or {}), "trainer.max_epochs")
    if isinstance(target, int) and target < trained:
        raise TlbenchError(
            f"this run dir already holds {trained} trained epochs (checkpoints/last.ckpt), so "
            f"training cannot continue to {target} (nothing in {run_dir} was changed)",
            key="trainer.max_epochs",
            value=target,
            allowed=f"an integer >= {trained} (resume trains up to trainer.max_epochs)",
            fix=f"resume with trainer.max_epochs={trained} or more; to use the model as it is, "
            f"python -m tlbench.evaluate ckpt={run_dir / LAST}",
        )


def rewrite_argv(argv: list[str]) -> list[str]:
    """`resume=<dir>` -> the old run's overrides + `hydra.run.dir=<dir>` (see module doc)."""
    rank_zero.begin()  # srun/torchrun rank 0: a refusal from here on stops the other ranks too
    if is_ddp_child():
        return argv
    rundir.new_token()  # never a token inherited from a tlbench process that started this one
    value = arg_value(argv, "resume")
    if value in (None, "null"):
        return argv
    if not value.strip():
        raise TlbenchError(
            "resume= is empty (an unset shell variable?); without a run dir it would silently "
            "start a fresh run with the default config (nothing was started)",
            key="resume",
            value=value,
            fix="resume=<run dir> (the folder holding the run's summary.json and .hydra/), or "
            "drop resume= to start a new run",
        )
    if any(a in ("-m", "--multirun") for a in argv):
        raise TlbenchError(
            "resume continues one run; a sweep is continued with skip_completed=true",
            key="resume",
            value=value,
            fix="drop --multirun, or re-run the sweep with the same hydra.sweep.dir and "
            "skip_completed=true",
        )
    if str(arg_value(argv, "overwrite")).lower() == "true":
        raise TlbenchError(
            "resume= continues a run and overwrite=true deletes it; they exclude each other",
            key="overwrite",
            value=True,
            fix="drop overwrite=true to continue the run, or drop resume= to start it again",
        )
    run_dir = _run_dir_of(value)
    from tlbench.config import target_checks  # a handed-over dir: its saved _target_s first

    target_checks.check_run_dir(run_dir)
    info = rundir.holder(run_dir)
    if info is not None:
        raise rundir.busy_error(run_dir, info, "resume")
    _SEEN[os.path.realpath(run_dir)] = _state_of(run_dir)  # compared again under the lock
    hydra_old, old = _saved_overrides(run_dir)
    typed = [a for a in argv if a.partition("=")[0] != "resume"]
    before, after = _composed(old), _composed([*old, *typed])
    if before is not None and after is not None:
        _check_changes(run_dir, before, after, value)
    _check_epochs(run_dir, after, value)
    done = completed_summary(run_dir)
    if done:
        target = OmegaConf.select(OmegaConf.create(after or {}), "trainer.max_epochs")
        if not isinstance(target, int) or target <= int(done.epochs or 0):
            print(
                f"tlbench: {run_dir} already completed (summary.json says ok, "
                f"{done.epochs} epochs); nothing to resume. To train it longer: "
                f"{shlex.quote(f'resume={run_dir}')} trainer.max_epochs=<more>"
            )
            raise SystemExit(0)
    rundir.check_writable(run_dir, "resume")
    path = hydra_quote(str(run_dir))
    return [*hydra_old, *old, *typed, f"resume={path}", f"hydra.run.dir={path}"]


_SEEN: dict[str, tuple] = {}  # a resumed dir's state when rewrite_argv checked it


def _state_of(run_dir: Path) -> tuple:
    """What a resume was checked against: summary.json's status and last.ckpt's identity."""
    try:
        st = (Path(run_dir) / LAST).stat()
        ckpt = (st.st_mtime_ns, st.st_size)
    except OSError:
        ckpt = None
    return rundir.status(Path(run_dir)), ckpt


def _resume_check(t: targets.Target) -> None:
    """Under the lock: the dir holds no foreign files, and nobody trained into it since
    rewrite_argv checked it (two resumes started together: the second gets the lock only after
    the first finished, and must not train a second time from a state it never checked)."""
    owned.inspect(t.dir, t.key, t.value, overwrite=False)
    seen = _SEEN.get(os.path.realpath(t.dir))
    if seen is not None and _state_of(t.dir) != seen:
        raise TlbenchError(
            "another tlbench process trained into this run dir while this one was starting; "
            "continuing from a state this command never checked would mix two attempts "
            "(nothing was changed)",
            key="resume",
            value=t.value,
            fix="run the command again: it then continues from the run's new state, or says "
            "that there is nothing left to resume",
        )


def _at_exit() -> None:
    """Release this launch's locks, then remove the dirs it created but never used (Hydra
    refused the command line after the checks passed, e.g. an unknown flag)."""
    rundir.release_all()
    targets.remove_unused()


def check_targets(argv: list[str], jobs: list[list[str]] | None) -> list[str]:
    """`_check_targets`, by rank 0 only when srun or torchrun started the ranks: the others run
    the command line rank 0 checked and pinned (runtime.rank_zero)."""
    followed = rank_zero.follow()
    if followed is not None:
        return followed
    checked = _check_targets(argv, jobs)
    rank_zero.publish(checked)
    return checked


def _check_targets(argv: list[str], jobs: list[list[str]] | None) -> list[str]:
    """Before Hydra writes anything: every dir the launch will write is worked out (a default
    timestamped dir is resolved and pinned in the returned argv), checked (its place, its foreign
    files, a run dir holding completed or unfinished work unless skip_completed=true or
    overwrite=true) and locked (tlbench.runtime.rundir's module doc)."""
    flags, args = split_argv(argv)
    if is_ddp_child() or flags & INFO_FLAGS:
        return argv  # a DDP rank's parent holds the dirs; Hydra's info flags write nothing
    global _EXIT_HOOK
    rundir.new_token()
    if not _EXIT_HOOK:
        _EXIT_HOOK = bool(atexit.register(_at_exit))
    # A requeued SLURM attempt (an sbatch script started again) continues its dirs' work.
    skip = str(arg_value(argv, "skip_completed")).lower() == "true" or cluster.requeued()
    overwrite = str(arg_value(argv, "overwrite")).lower() == "true"
    cfg = targets.composed(jobs[0] if jobs else args)
    data = targets.data_dirs(cfg)
    value = arg_value(argv, "resume")
    if value not in (None, "", "null"):  # rewrite_argv made it hydra.run.dir=<that dir>
        where = targets.absolute(arg_value(argv, "hydra.run.dir"))
        targets.take([targets.Target(where, "resume", value, "resume")], data, _resume_check)
        return argv
    multirun = any(a in ("-m", "--multirun") for a in argv)
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    group = targets.run_targets(argv, cfg, key)
    if multirun:
        group += targets.job_targets(argv, jobs, group[0])
    found: dict[Path, str] = {}

    def check(t: targets.Target) -> None:
        if t.kind == "run":
            found[t.dir] = targets.check_one(t.dir, t.key, t.value, skip, overwrite, sweep=False)
        elif t.kind == "job":
            found[t.dir] = targets.job_check(t, skip, overwrite, t.value)

    targets.take(group, data, check)
    for where, state in found.items():  # every dir passed: only now is anything deleted
        if state == "overwrite":
            owned.clear(where)
    pinned = [a for a in argv if a.partition("=")[0] != key]
    return [*pinned, f"{key}={hydra_quote(str(group[0].dir))}"]
