"""Before Hydra starts (`tlbench.cli.train_main`): turn `resume=<dir>` into the old run's command
line after checking what was typed with it, and refuse output dirs that would be poisoned or
mixed (completed or unfinished work, a live lock, no write permission). Nothing in a run dir is
written before these checks pass. The design is in tlbench.runtime.resume's module doc.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from omegaconf import OmegaConf

from tlbench.errors import TlbenchError
from tlbench.runtime import rundir
from tlbench.runtime.resume import (
    DIR_KEYS,
    OWN_KEYS,
    RESUMABLE,
    arg_value,
    completed_summary,
    experiment_overrides,
    hydra_quote,
    is_ddp_child,
)
from tlbench.training import summary as run_summary


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
    old = [o for o in old if o.partition("=")[0].lstrip("+~") not in OWN_KEYS]
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
        if a.get(k, "<absent>") != b.get(k, "<absent>")
        and not any(k == r or k.startswith(r + ".") for r in RESUMABLE)
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
            allowed="overrides of " + ", ".join(RESUMABLE[:-3]),
            fix="resume with only those (e.g. trainer.max_epochs=N), or start a new run with the "
            "new values in a new hydra.run.dir",
        )


def rewrite_argv(argv: list[str]) -> list[str]:
    """`resume=<dir>` -> the old run's overrides + `hydra.run.dir=<dir>` (see module doc)."""
    value = arg_value(argv, "resume")
    if value in (None, "", "null") or is_ddp_child():
        return argv
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
    info = rundir.holder(run_dir)
    if info is not None:
        raise rundir.busy_error(run_dir, info, "resume")
    hydra_old, old = _saved_overrides(run_dir)
    typed = [a for a in argv if a.partition("=")[0] != "resume"]
    before, after = _composed(old), _composed([*old, *typed])
    if before is not None and after is not None:
        _check_changes(run_dir, before, after, value)
    done = completed_summary(run_dir)
    if done:
        target = OmegaConf.select(OmegaConf.create(after or {}), "trainer.max_epochs")
        if not isinstance(target, int) or target <= int(done.get("epochs") or 0):
            print(
                f"tlbench: {run_dir} already completed (summary.json says ok, "
                f"{done.get('epochs')} epochs); nothing to resume. To train it longer: "
                f"{shlex.quote(f'resume={run_dir}')} trainer.max_epochs=<more>"
            )
            raise SystemExit(0)
    rundir.check_writable(run_dir, "resume")
    path = hydra_quote(str(run_dir))
    return [*hydra_old, *old, *typed, f"resume={path}", f"hydra.run.dir={path}"]


def _refuse_unfinished(where: Path, key: str, value: str, sweep: bool) -> TlbenchError:
    what = f"job {where.name} of this sweep" if sweep else "this run dir"
    return TlbenchError(
        f"{what} holds an unfinished run (summary.json says {rundir.status(where) or 'nothing'}, "
        f"in {where}); training into it again would mix two attempts (nothing was changed)",
        key=key,
        value=value,
        fix=(
            "add skip_completed=true to continue unfinished jobs from their last.ckpt and skip "
            "finished ones, overwrite=true to start the sweep again (clears the job dirs), or "
            "choose a new hydra.sweep.dir"
            if sweep
            else f"continue it with {shlex.quote(f'resume={where}')}, start it again with "
            "overwrite=true (clears the dir first), or choose a new hydra.run.dir"
        ),
    )


def _check_one(run_dir: Path, key: str, value: str, skip: bool, overwrite: bool, sweep: bool):
    """Whether a run/job dir may be trained into (raises if not); clears it for overwrite=true."""
    info = rundir.holder(run_dir)
    if info is not None:
        raise rundir.busy_error(run_dir, info, key)
    found = rundir.state(run_dir)
    if found == "empty" or skip:
        return found
    if overwrite:
        rundir.clear(run_dir, key)
        return "empty"
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
        "to train it again from scratch (clears the dir first)",
    )


def _saved_summary_overrides(run_dir: Path) -> list[str] | None:
    """The overrides a job's summary.json recorded (None: no readable summary, e.g. only
    checkpoints of a job killed before it could write one)."""
    try:
        return run_summary.read(run_dir).get("overrides")
    except (OSError, ValueError):
        return None


def check_targets(argv: list[str], jobs: list[list[str]] | None) -> None:
    """Before Hydra writes anything: the output dir is writable, and a run/sweep dir holding
    completed or unfinished work is refused unless skip_completed=true or overwrite=true."""
    if is_ddp_child() or arg_value(argv, "resume") not in (None, "", "null"):
        return
    skip = str(arg_value(argv, "skip_completed")).lower() == "true"
    overwrite = str(arg_value(argv, "overwrite")).lower() == "true"
    multirun = any(a in ("-m", "--multirun") for a in argv)
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    base = arg_value(argv, key)
    if base is None:  # a fresh timestamped dir under outputs/
        rundir.check_writable(Path("outputs"), key)
        return
    base_dir = Path(base).expanduser()
    rundir.check_writable(base_dir, key)
    if not multirun:
        _check_one(base_dir, key, base, skip, overwrite, sweep=False)
        return
    if arg_value(argv, "hydra.sweep.subdir") is not None or not jobs:
        return  # job dirs cannot be predicted here; each job checks itself
    for num, overrides in enumerate(jobs):
        job_dir = base_dir / str(num)
        found = _check_one(job_dir, key, base, skip, overwrite, sweep=True)
        saved = _saved_summary_overrides(job_dir) if found != "empty" else None
        if saved is not None and experiment_overrides(saved) != experiment_overrides(overrides):
            raise TlbenchError(
                f"job {num} of this sweep ran with other overrides "
                f"({' '.join(experiment_overrides(saved))}) than it has now "
                f"({' '.join(experiment_overrides(overrides))}); skipping, continuing or redoing it would "
                "mix up the sweep (nothing was changed)",
                key="hydra.sweep.dir",
                value=base,
                fix="re-run the sweep with exactly the same values in the same order, "
                "overwrite=true to start it again, or use a new hydra.sweep.dir",
            )
