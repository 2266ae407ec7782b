"""One extraction per feature-cache key: the claim on `<cache dir>/<key>.lock`.

`claim(lock)` takes an exclusive kernel lock (`flock`) that `feature_cache.prepare` holds while it
looks for the cache file again and, if it is still missing, extracts and writes it; a second job
waits (interruptibly, every `POLL` seconds), then reads the finished cache. A dead holder's lock
is free at once. A file system without locks, or a cache dir the job cannot write, is no error:
the job extracts unclaimed. Why: docs/architecture.md, "Feature cache".
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tlbench import atomic

log = logging.getLogger("tlbench")
POLL = 0.2  # seconds between tries while another job holds the claim
# A lock path that is a symbolic link (never written through), a file system without locks
UNLOCKABLE = {errno.ELOOP, errno.ENOLCK, errno.EOPNOTSUPP}


@contextlib.contextmanager
def claim(path: Path, stop: Callable | None = None) -> Iterator[float]:
    """Hold the claim on `path` for the block; yields the seconds spent waiting for it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, waited = _acquire(path, stop)
    except OSError as exc:
        if atomic.disk_problem(exc) is None and exc.errno not in UNLOCKABLE:
            raise
        log.info("feature cache: cannot lock %s (%s); extracting without a claim", path, exc)
        fd, waited = None, 0.0
    if fd is None:
        yield waited
        return
    try:
        mine = json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode()
        with contextlib.suppress(OSError):  # only for the waiters' message (a full disk...)
            os.pwrite(fd, mine, 0)
            os.ftruncate(fd, len(mine))
        yield waited
    finally:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # before the lock drops: a waiter never reads a finished holder
        os.close(fd)  # drops the kernel lock


def _acquire(path: Path, stop: Callable | None) -> tuple[int, float]:
    start, told, fd = time.monotonic(), False, _open(path)
    try:
        while not _locked(path, fd):
            if not told:
                log.info(
                    "waiting for another job extracting the same features (%s); lock %s",
                    _holder(path),
                    path,
                )
                told = True
            if stop is not None:
                stop(" while waiting for another job's feature extraction")
            time.sleep(POLL)
            if not _same_file(path, fd):  # the lock file was removed or replaced: use the new one
                os.close(fd)
                fd = _open(path)
    except BaseException:  # stop() interrupted the wait, or this file system has no locks
        os.close(fd)
        raise
    if not told:
        return fd, 0.0
    log.info("feature cache claim taken after %.1f s", time.monotonic() - start)
    return fd, time.monotonic() - start


def _locked(path: Path, fd: int) -> bool:
    """Took the kernel lock on `fd`, and it is still the file at `path`."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    if _same_file(path, fd):
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)  # an unlinked inode; the loop opens the current file
    return False


def _open(path: Path) -> int:
    return os.open(
        path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666
    )  # umask applies


def _same_file(path: Path, fd: int) -> bool:
    try:
        return os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _holder(path: Path) -> str:
    """'pid N on HOST' from the lock file (empty for the instant between a rival's lock and its
    write)."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {info['pid']} on {info['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "pid ?"
