"""DDP ranks started by srun or torchrun: rank 0 decides the command line, every other rank runs it.

Only rank 0 rewrites (`resume=`), checks, locks and claims the dirs and pins the default run dir;
it publishes the command line it checked (or its refusal) in a note under
`outputs/.launches/<launch>.json`, and ranks > 0 wait for it (`WAIT_S`) and run exactly that,
with `hydra.output_subdir=null`. `<launch>` names this launch for every rank and no other.
Why: docs/architecture.md, "DDP launches".
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from tlbench import atomic
from tlbench.errors import TlbenchError
from tlbench.runtime import distributed

STARTED = time.time()  # this process's start, near enough (imported as `python -m tlbench` starts)
WAIT_S = 600.0  # rank 0 composes and checks every job first: seconds, minutes for big sweeps
WINDOW_S = 120.0  # torchrun starts the ranks of one launch together: within seconds
_STATE: dict = {"begun": False, "published": False, "note": None}


def launch_key() -> str | None:
    """This launch's name, the same on every rank (None: not an srun/torchrun launch)."""
    env = os.environ
    kind = distributed.launcher()
    if kind == "srun":
        step = env.get("SLURM_STEP_ID", env.get("SLURM_STEPID", "batch"))
        return f"slurm-{env.get('SLURM_JOB_ID')}.{step}.{env.get('SLURM_RESTART_COUNT', '0')}"
    if kind == "torchrun":
        run_id = env.get("TORCHELASTIC_RUN_ID")
        where = f"{env.get('MASTER_ADDR')}-{env.get('MASTER_PORT')}"
        one_node = env.get("LOCAL_WORLD_SIZE") == env.get("WORLD_SIZE")
        agent = f"-{os.getppid()}" if run_id == "none" and one_node else ""
        restart = env.get("TORCHELASTIC_RESTART_COUNT", "0")
        return f"torchrun-{run_id}-{where}-{restart}{agent}".replace("/", "_")
    return None


def _places(key: str) -> list[Path]:
    return [
        Path.cwd() / "outputs" / ".launches" / f"{key}.json",
        Path(tempfile.gettempdir()) / "tlbench-launches" / f"{key}.json",
    ]


def _write(key: str, note: dict) -> None:
    for path in _places(key):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic.write_text(path, json.dumps({**note, "started": STARTED}))
            _STATE["note"] = path
            return
        except OSError:
            continue


def begin() -> None:
    """Rank 0 of an srun/torchrun launch: whatever happens before `publish`, the other ranks
    hear of it at exit (they would otherwise wait in DDP initialisation until a time limit)."""
    if launch_key() is None or distributed.rank() != 0 or _STATE["begun"]:
        return
    _STATE["begun"] = True
    atexit.register(_at_exit)


def publish(argv: list[str]) -> None:
    """Rank 0: the checked, pinned command line every rank runs."""
    key = launch_key()
    if key is not None and distributed.rank() == 0:
        _write(key, {"argv": argv})
        _STATE["published"] = True


def _at_exit() -> None:
    key = launch_key()
    if not _STATE["published"]:  # refused (or nothing to do): the others stop too
        _write(key, {"refused": True})
        return  # left in place: a rank still starting must find it
    if _STATE["note"] is not None:  # training ran, so every rank has read it
        note = Path(_STATE["note"])
        note.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # only when no other launch's note is in it
            note.parent.rmdir()


def _read(key: str) -> dict | None:
    for path in _places(key):
        try:
            note = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        # srun's key is unique (job, step, restart); torchrun's can repeat across launches
        fresh = abs(float(note.get("started", 0)) - STARTED) <= WINDOW_S
        if fresh or distributed.launcher() == "srun":
            return note
    return None


def follow() -> list[str] | None:
    """Ranks > 0 of an srun/torchrun launch: rank 0's command line (None: not such a rank)."""
    key = launch_key()
    if key is None or distributed.rank() == 0:
        return None
    deadline = time.monotonic() + WAIT_S
    while (note := _read(key)) is None:
        if time.monotonic() > deadline:
            raise TlbenchError(
                f"rank {distributed.rank()} waited {WAIT_S:.0f} s for rank 0 of this launch to "
                f"check the command line (its note {_places(key)[0]} never appeared)",
                key="rank",
                value=distributed.rank(),
                fix="read rank 0's output: it failed before checking; every rank must start in "
                "the same working dir (srun and torchrun keep it)",
            )
        time.sleep(0.2)
    if note.get("refused"):
        print(
            f"tlbench: rank {distributed.rank()}: rank 0 did not start training (its output "
            "says why); this rank stops too",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(2)
    argv = [a for a in note["argv"] if a.partition("=")[0] != "hydra.output_subdir"]
    return [*argv, "hydra.output_subdir=null"]  # .hydra/ is rank 0's
