"""A run dir holds one run: what state it is in, who is writing into it, whether it is writable.

`state(dir)`: "empty", "ok" or "unfinished". `Lock`: `tlbench.lock`, a kernel `flock` taken
without waiting (exactly one of two starts wins; a dead holder frees it), taken by the launch
before Hydra writes anything and re-validated by the job. `check_writable(dir, key)`: one
paragraph instead of a PermissionError. What a run dir owns and where one may be: runtime.owned.
Why: docs/architecture.md, "Run dirs".
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import secrets
import socket
import time
from pathlib import Path

from tlbench import summary_file as run_summary
from tlbench.errors import TlbenchError

log = logging.getLogger("tlbench")

LOCK = "tlbench.lock"
TOKEN_ENV = "TLBENCH_LOCK_TOKEN"  # the launch's token: its jobs accept the locks it took for them


def status(run_dir: Path) -> str | None:
    """summary.json's status, or None without a readable one."""
    try:
        return run_summary.read(run_dir).status
    except (OSError, ValueError):
        return None


def state(run_dir: Path) -> str:
    found = status(run_dir)
    if found == "ok":
        return "ok"
    checkpoints = any((run_dir / "checkpoints").glob("*.ckpt"))
    if found == "failed" and not checkpoints and _failed_before_training(run_dir):
        return "empty"  # nothing was trained: the corrected command may reuse the dir
    if found is not None or checkpoints:
        return "unfinished"
    return "empty"


def _failed_before_training(run_dir: Path) -> bool:
    """summary.json says the run failed before any training started (e.g. on its data)."""
    try:
        return run_summary.read(run_dir).failed_before_training is True
    except (OSError, ValueError):
        return False


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


def _read_lock(path: Path) -> dict | None:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return info if isinstance(info, dict) else None
    except (OSError, ValueError):
        return None


def _flocked(path: Path) -> bool:
    """Whether another open file holds the kernel lock on `path` (a probe: taken and dropped)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _handed_over(info: dict | None) -> bool:
    """The lock was taken for this job by its launching process (see the module doc)."""
    token = os.environ.get(TOKEN_ENV)
    return bool(token) and info is not None and info.get("token") == token


def _live_other(info: dict | None) -> bool:
    """The lock file names another live process (or one on another machine: cannot check)."""
    if not info:
        return False
    try:
        pid, host = int(info["pid"]), str(info.get("host", ""))
    except (KeyError, TypeError, ValueError):
        return False
    if host and host != socket.gethostname():
        return True
    return pid != os.getpid() and _alive(pid)


def holder(run_dir: Path) -> dict | None:
    """The live process holding the run dir's lock (pid, host), or None (no lock, a stale one,
    this process's own, or the one handed over to this job)."""
    path = Path(run_dir) / LOCK
    if _key(path) in _HELD or not path.is_file():
        return None
    info = _read_lock(path)
    if _handed_over(info):
        return None
    if _flocked(path):
        return info or {"pid": "?", "host": "?"}
    return info if _live_other(info) else None


def busy_error(run_dir: Path, info: dict, key: str) -> TlbenchError:
    return TlbenchError(
        f"another tlbench process (pid {info.get('pid')} on {info.get('host')}) is training into "
        f"this run dir right now; a second one would mix their files (nothing was changed)",
        key=key,
        value=str(run_dir),
        fix=f"wait for it to finish, stop it (kill {info.get('pid')}), or choose another dir; "
        f"a lock left by a dead process ({run_dir / LOCK}) is taken over automatically",
    )


_HELD: dict[Path, Lock] = {}  # the locks this process took, by lock-file path


def _key(path: Path) -> Path:
    """What Hydra makes of a dir (os.path.abspath: relative to the working dir, links kept)."""
    return Path(os.path.abspath(os.path.expanduser(path)))


def new_token() -> None:
    """A new launch: jobs started from here accept only the locks this launch takes (never a
    token inherited from a parent tlbench or a test process)."""
    os.environ[TOKEN_ENV] = secrets.token_hex(8)


class Lock:
    """`tlbench.lock` of one run dir (see the module doc): `acquire()` refuses a live holder and
    takes over a stale lock; `release()` removes it if it is still ours. Also a context manager."""

    def __init__(self, run_dir: str | Path, key: str = "hydra.run.dir") -> None:
        self.path, self.key, self._fd = _key(Path(run_dir) / LOCK), key, None

    def acquire(self, hold: bool = True) -> Lock:
        """`hold=False`: name this process in the file but keep no open file (a sweep's job dirs,
        see the module doc); a rival still sees a live pid."""
        held = _HELD.get(self.path)
        if held is not None:  # taken for this job by the launching step of this process
            return held
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = self._kernel_lock()
        info = _read_lock(self.path)
        if fd is None and _handed_over(info):  # a worker's job: its launching process holds it
            _HELD[self.path] = self
            return self
        if fd is None or (_live_other(info) and not _handed_over(info)):
            if fd is not None:
                os.close(fd)
            raise busy_error(self.path.parent, info or {"pid": "?", "host": "?"}, self.key)
        if info and info.get("pid") != os.getpid() and not _handed_over(info):
            log.warning("run dir lock %s was left by a process that is gone; taken over", self.path)
        mine = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "token": os.environ.get(TOKEN_ENV),
        }
        data = json.dumps(mine).encode()
        os.pwrite(fd, data, 0)  # in place: the kernel lock belongs to this inode
        os.ftruncate(fd, len(data))
        if hold:
            self._fd = fd
        else:
            os.close(fd)
        _HELD[self.path] = self
        return self

    def _kernel_lock(self) -> int | None:
        """flock the file (None: another open file holds it). Retried for a second: a holder()
        probe holds it for microseconds, and a releasing holder may unlink it under us."""
        for _ in range(20):
            try:
                flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
                fd = os.open(self.path, flags, 0o644)
            except FileNotFoundError:  # a refused rival removed the folder it thought it made
                self.path.parent.mkdir(parents=True, exist_ok=True)
                continue
            except OSError as exc:
                if exc.errno != errno.ELOOP:
                    raise
                raise TlbenchError(
                    f"{self.path} is a symbolic link; tlbench never writes through one",
                    key=self.key,
                    value=str(self.path.parent),
                    fix="remove the link, or choose another dir",
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                    return fd
            except (BlockingIOError, FileNotFoundError):
                pass
            os.close(fd)
            time.sleep(0.05)
        return None

    def release(self) -> None:
        if _HELD.get(self.path) is self:
            del _HELD[self.path]
        info = _read_lock(self.path)
        try:
            if info and info.get("pid") == os.getpid():
                self.path.unlink()
        except OSError:
            pass
        finally:  # unlinked first, then the kernel lock dropped (see _kernel_lock)
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> Lock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def release_all() -> None:
    """Every lock this process still holds (the end of a launch; a test's cleanup)."""
    for lock in list(_HELD.values()):
        lock.release()


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
