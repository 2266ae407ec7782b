"""Continue a killed run in its own directory, and skip the finished jobs of a re-run sweep.

`python -m tlbench resume=<run dir>` (design):
- `main()` rewrites the command line before Hydra starts (`rewrite_argv`): the old run's
  `.hydra/overrides.yaml` (and its non-directory `hydra.*` overrides) come first, then anything
  typed now (e.g. `trainer.max_epochs=20` to train longer), then `hydra.run.dir=<run dir>`. So
  the config is the old one and Hydra's run dir *is* the old dir: same summary.json, metrics.csv,
  checkpoints/ and tensorboard/, and train.log is appended to.
- Training continues from `checkpoints/last.ckpt` (Lightning restores weights, optimizer,
  scheduler, epoch and global step). That file is written at the end of every epoch, so a run
  killed mid-epoch re-runs that epoch from its start: at most one epoch of work is lost. (A
  mid-epoch checkpoint cannot be resumed exactly with an ordinary DataLoader; see signals.py.)
  A run killed before its first epoch ended has no last.ckpt and starts again from scratch.
- TensorBoard: the resumed logger writes a `purge_step` marker (SummaryWriter's own mechanism),
  so TensorBoard drops the old events from the re-run part: one point per step and epoch, none
  missing, none duplicated. metrics.csv keeps the rows of the finished epochs.
- summary.json ends with the usual fields; `epochs` counts all epochs, `fit_seconds` and
  `train_images_per_second` cover the resumed part only, `resumed_from` names the checkpoint.
- Resuming a run whose summary says `ok` does nothing (exit 0).

`skip_completed=true`: a job whose run dir already holds a summary.json with status `ok` and the
same overrides returns that summary without training or writing anything. Job dirs are only
deterministic with an explicit `hydra.sweep.dir` (the default contains the launch time), so:
    python -m tlbench -m hydra.sweep.dir=outputs/multiruns/cmp strategy=transfer,finetune
    python -m tlbench -m hydra.sweep.dir=outputs/multiruns/cmp strategy=transfer,finetune skip_completed=true
Without skip_completed, `main()` refuses to start a run or sweep into a directory that already
holds completed work (before Hydra writes anything there).
"""

from __future__ import annotations

import csv
import logging
import os
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from tlbench.config import runtime as hydra_runtime
from tlbench.errors import TlbenchError
from tlbench.training import summary as run_summary

log = logging.getLogger("tlbench")

LAST = Path("checkpoints") / "last.ckpt"
OWN_KEYS = ("resume", "skip_completed")  # overrides that steer resuming, not the experiment
DIR_KEYS = ("hydra.run.", "hydra.sweep.", "hydra.mode", "hydra.job.")  # where/how, not what


def _quote(value: str) -> str:
    """A path as a Hydra override value (quoted when it holds grammar characters)."""
    if re.fullmatch(r"[\w./:~+-]+", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _arg(argv: list[str], key: str) -> str | None:
    found = None
    for a in argv:
        k, sep, v = a.partition("=")
        if sep and k == key:
            found = v.strip("'\"")
    return found


def _ok(run_dir: Path) -> dict | None:
    try:
        s = run_summary.read(run_dir)
    except (OSError, ValueError):
        return None
    return s if s.get("status") == "ok" else None


def _experiment(overrides) -> list[str]:
    """Overrides that define the experiment (not where it runs, not how it resumes)."""
    return sorted(
        o
        for o in overrides
        if o.partition("=")[0].lstrip("+~") not in OWN_KEYS
        and not o.startswith(("hydra.", "hydra/"))
    )


def is_ddp_child() -> bool:
    """Lightning re-runs the command line for ranks > 0 with LOCAL_RANK set; they must not
    rewrite it again or check directories the parent already prepared."""
    return os.environ.get("LOCAL_RANK", "0") != "0"


# -- main(): before Hydra ---------------------------------------------------------------------
def rewrite_argv(argv: list[str]) -> list[str]:
    """`resume=<dir>` -> the old run's overrides + `hydra.run.dir=<dir>` (see module doc)."""
    value = _arg(argv, "resume")
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
    run_dir = Path(value).expanduser().resolve()
    saved = run_dir / ".hydra" / "overrides.yaml"
    if not saved.is_file():
        raise TlbenchError(
            "not a tlbench run dir (it has no .hydra/overrides.yaml)",
            key="resume",
            value=value,
            allowed="a run dir written by `python -m tlbench` (outputs/runs/<time> or a sweep's <n>/)",
            fix="point resume= at the directory that holds the run's summary.json and .hydra/",
        )
    if _ok(run_dir):
        print(f"tlbench: {run_dir} already completed (summary.json says ok); nothing to resume.")
        raise SystemExit(0)
    old = [str(o) for o in OmegaConf.load(saved)]
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
    typed = [a for a in argv if a.partition("=")[0] != "resume"]
    path = _quote(str(run_dir))
    return [*hydra_old, *old, *typed, f"resume={path}", f"hydra.run.dir={path}"]


def check_targets(argv: list[str], jobs: list[list[str]] | None) -> None:
    """Refuse, before Hydra writes anything, to train into a dir holding completed work."""
    if is_ddp_child() or _arg(argv, "resume") not in (None, "", "null"):
        return
    skip = str(_arg(argv, "skip_completed")).lower() == "true"
    multirun = any(a in ("-m", "--multirun") for a in argv)
    base = _arg(argv, "hydra.sweep.dir" if multirun else "hydra.run.dir")
    if base is None:
        return  # a fresh timestamped dir
    base_dir = Path(base).expanduser()
    if not multirun:
        done = _ok(base_dir)
        if done and not skip:
            raise TlbenchError(
                "this run dir already holds a completed run; starting again would overwrite it "
                "(nothing was changed)",
                key="hydra.run.dir",
                value=base,
                fix="choose a new hydra.run.dir, add skip_completed=true to keep it, or delete "
                "the directory to train again",
            )
        return
    if _arg(argv, "hydra.sweep.subdir") is not None or not jobs:
        return  # job dirs cannot be predicted here; each job checks itself
    for num, overrides in enumerate(jobs):
        done = _ok(base_dir / str(num))
        if not done:
            continue
        if not skip:
            raise TlbenchError(
                f"the sweep dir already holds completed jobs (e.g. {base_dir / str(num)}); "
                "running the sweep again would overwrite them (nothing was changed)",
                key="hydra.sweep.dir",
                value=base,
                fix="add skip_completed=true to run only the unfinished jobs, or choose a new "
                "hydra.sweep.dir",
            )
        if _experiment(done.get("overrides") or []) != _experiment(overrides):
            raise TlbenchError(
                f"job {num} of this sweep was completed with other overrides "
                f"({' '.join(_experiment(done.get('overrides') or []))}) than it has now "
                f"({' '.join(_experiment(overrides))}); skipping or redoing it would mix up the "
                "sweep (nothing was changed)",
                key="hydra.sweep.dir",
                value=base,
                fix="re-run the sweep with exactly the same values in the same order, or use a "
                "new hydra.sweep.dir",
            )


# -- train(): inside the job ------------------------------------------------------------------
def completed(cfg: DictConfig, run_dir: Path) -> dict | None:
    """With skip_completed=true, the summary of this job's finished earlier run (else None)."""
    if not cfg.get("skip_completed") or cfg.get("resume"):
        return None
    done = _ok(run_dir)
    if done is None:
        return None
    now = hydra_runtime.task_overrides()
    if now and _experiment(done.get("overrides") or []) != _experiment(now):
        raise TlbenchError(
            f"{run_dir} holds a completed run with other overrides "
            f"({' '.join(_experiment(done.get('overrides') or []))}); it was left untouched",
            key="skip_completed",
            value=True,
            fix="use a new hydra.sweep.dir / hydra.run.dir for a different experiment",
        )
    log.info("skip_completed: %s already holds a completed run; skipped", run_dir)
    return {**done, "skipped": True}


def checkpoint(cfg: DictConfig) -> str | None:
    """What `trainer.fit(ckpt_path=...)` gets: last.ckpt of the resumed run, else cfg.ckpt_path."""
    if cfg.get("resume"):
        last = Path(str(cfg.resume)).expanduser() / LAST
        if last.is_file():
            return str(last)
        log.warning(
            "resume: %s does not exist (killed before its first epoch ended); "
            "training starts from scratch",
            last,
        )
        return None
    return cfg.get("ckpt_path")


def _progress(ckpt: str | None) -> tuple[int, int]:
    """(epochs finished, global step) stored in a Lightning checkpoint; (0, 0) without one."""
    if not ckpt:
        return 0, 0
    import torch

    state = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
    # Saved at the end of epoch e (on validation end): training continues with epoch e + 1.
    return int(state.get("epoch", -1)) + 1, int(state.get("global_step", 0))


def logger_kwargs(cfg: DictConfig, node, ckpt: str | None) -> dict:
    """For a resumed run's TensorBoard logger: drop the old events from `purge_step` on."""
    if not cfg.get("resume") or not str(node.get("_target_", "")).endswith("TensorBoardLogger"):
        return {}
    return {"purge_step": _progress(ckpt)[1]}


def previous_rows(cfg: DictConfig, path: Path, ckpt: str | None) -> list[dict]:
    """metrics.csv rows of the epochs the checkpoint already holds (the rest is re-run)."""
    if not cfg.get("resume") or not Path(path).is_file():
        return []
    epochs, _ = _progress(ckpt)
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
