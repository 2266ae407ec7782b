"""A run dir holds one run: what state it is in, who is writing into it, whether it is writable.

- `state(dir)`: "empty" (nothing of a run), "ok" (summary.json says ok), or "unfinished"
  (a summary.json that says running / interrupted / failed, or checkpoints without a summary).
- `Lock`: `tlbench.lock` in the run dir holds the pid and host of the process training into it.
  A second process is refused while that pid is alive; a lock left by a dead process (SIGKILL,
  OOM, a crashed node on the same host) is stale and taken over. On Linux a live pid only counts
  if its command line mentions tlbench, so a recycled pid does not keep a dir locked forever.
- `check_writable(dir, key)`: the dir, or the nearest existing folder above it, must be writable
  (os.access, which also reports read-only file systems), else one paragraph and exit 2 instead
  of a PermissionError traceback from deep inside Hydra.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
from pathlib import Path

from tlbench import atomic
from tlbench.errors import TlbenchError
from tlbench.training import summary as run_summary

log = logging.getLogger("tlbench")

LOCK = "tlbench.lock"


def status(run_dir: Path) -> str | None:
    """summary.json's status, or None without a readable one."""
    try:
        return run_summary.read(run_dir).get("status")
    except (OSError, ValueError):
        return None


def state(run_dir: Path) -> str:
    found = status(run_dir)
    if found == "ok":
        return "ok"
    if found is not None or any((run_dir / "checkpoints").glob("*.ckpt")):
        return "unfinished"
    return "empty"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.is_file():
        try:
            args = cmdline.read_bytes()
        except OSError:
            return True
        return not args or b"tlbench" in args  # empty while a process is still starting
    return True


def holder(run_dir: Path) -> dict | None:
    """The live process holding the run dir's lock (pid, host), or None (no lock / stale)."""
    try:
        info = json.loads((run_dir / LOCK).read_text(encoding="utf-8"))
        pid, host = int(info["pid"]), str(info.get("host", ""))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if host and host != socket.gethostname():
        return info  # another machine's process: cannot check, assume alive
    return info if pid != os.getpid() and _alive(pid) else None


def busy_error(run_dir: Path, info: dict, key: str) -> TlbenchError:
    return TlbenchError(
        f"another tlbench process (pid {info.get('pid')} on {info.get('host')}) is training into "
        f"this run dir right now; a second one would mix their files (nothing was changed)",
        key=key,
        value=str(run_dir),
        fix=f"wait for it to finish, stop it (kill {info.get('pid')}), or choose another dir; "
        f"a lock left by a dead process ({run_dir / LOCK}) is taken over automatically",
    )


class Lock:
    """`tlbench.lock` of one run dir: `acquire()` refuses a live holder and takes over a stale
    lock; `release()` removes it if it is still ours. Also a context manager."""

    def __init__(self, run_dir: str | Path, key: str = "hydra.run.dir") -> None:
        self.path, self.key = Path(run_dir) / LOCK, key

    def acquire(self) -> Lock:
        info = holder(self.path.parent)
        if info is not None:
            raise busy_error(self.path.parent, info, self.key)
        if self.path.exists():
            log.warning("run dir lock %s was left by a process that is gone; taken over", self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        mine = {"pid": os.getpid(), "host": socket.gethostname()}
        atomic.write_text(self.path, json.dumps(mine))
        return self

    def release(self) -> None:
        try:
            if json.loads(self.path.read_text(encoding="utf-8")).get("pid") == os.getpid():
                self.path.unlink()
        except (OSError, ValueError):
            pass

    def __enter__(self) -> Lock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


class NoLock:
    """What DDP ranks > 0 hold: their parent process holds the real lock."""

    def release(self) -> None:
        pass


def check_writable(run_dir: Path, key: str) -> None:
    probe = Path(run_dir).expanduser().absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.is_dir() and os.access(probe, os.W_OK | os.X_OK):
        return
    raise TlbenchError(
        f"the output dir cannot be written: {probe} is "
        f"{'not a directory' if not probe.is_dir() else 'read-only for this user'}",
        key=key,
        value=str(run_dir),
        fix=f"choose a writable place, e.g. {key}=$HOME/tlbench_runs/run1 (or fix the "
        "permissions of that folder)",
    )


def clear(run_dir: Path, key: str) -> None:
    """`overwrite=true`: delete what the dir holds before Hydra writes into it."""
    info = holder(run_dir)
    if info is not None:
        raise busy_error(run_dir, info, key)
    if run_dir.is_dir() and any(run_dir.iterdir()):
        log.warning("overwrite=true: clearing %s", run_dir)
        shutil.rmtree(run_dir)
