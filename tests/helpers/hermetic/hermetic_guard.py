"""The suite is hermetic: no test (nor any process it starts) touches what a user's machine may or
may not have. `install()` adds a Python audit hook that records, in the file named by
$TLBENCH_HERMETIC_LOG, every open / listdir / scandir / mkdir / remove / rename of a forbidden
path, and every write inside the repository (run outputs, caches, data belong in tmp folders).
conftest.py fails the test during which a line appeared. Forbidden to read or write: the
folders listed in $TLBENCH_HERMETIC_FORBID (system dataset folders, the user's real caches, the
repository's data/, .cache/ and outputs/).

Audit hooks cannot be removed; the guard costs a string comparison per file event.
"""

from __future__ import annotations

import os
import sys

READ_EVENTS = {"open", "os.listdir", "os.scandir", "glob.glob"}
WRITE_EVENTS = {"os.mkdir", "os.remove", "os.rename", "shutil.rmtree", "os.rmdir", "os.truncate"}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
# Inside the repository a test may write only Python's and the tools' own caches.
REPO_WRITABLE = ("__pycache__", ".pytest_cache", ".ruff_cache")

_busy = False


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == r or path.startswith(r + os.sep) for r in roots)


def _is_write(event: str, args: tuple) -> bool:
    if event in WRITE_EVENTS:
        return True
    if event != "open":
        return False
    mode, flags = args[1], args[2]
    if isinstance(mode, str):
        return any(c in mode for c in "wax+")
    return isinstance(flags, int) and bool(flags & WRITE_FLAGS)


# Events whose path may be relative to a directory descriptor (shutil.rmtree works that way):
# the index of that descriptor among the event's arguments.
DIR_FD_ARG = {"os.remove": 1, "os.rmdir": 1, "os.mkdir": 2, "os.rename": 2, "shutil.rmtree": 1}


def _path(event: str, args: tuple) -> str | None:
    arg = args[0]
    if arg is None or isinstance(arg, int):
        return None
    try:
        path = os.fsdecode(arg)
    except (TypeError, ValueError):
        return None
    i = DIR_FD_ARG.get(event)
    dir_fd = args[i] if i is not None and len(args) > i else None
    if isinstance(dir_fd, int) and not os.path.isabs(path):
        try:
            path = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), path)
        except OSError:
            return None
    return os.path.abspath(path)


def install() -> None:
    log = os.environ["TLBENCH_HERMETIC_LOG"]
    forbid = tuple(p for p in os.environ.get("TLBENCH_HERMETIC_FORBID", "").split(os.pathsep) if p)
    repo = os.environ.get("TLBENCH_HERMETIC_REPO", "")

    def hook(event: str, args: tuple) -> None:
        global _busy
        if _busy or (event not in READ_EVENTS and event not in WRITE_EVENTS) or not args:
            return
        path = _path(event, args)
        if path is None or path == log:
            return
        bad = _under(path, forbid)
        if not bad and repo and _under(path, (repo,)) and _is_write(event, args):
            bad = not any(part in REPO_WRITABLE for part in path.split(os.sep))
        if bad:
            _busy = True
            try:
                with open(log, "a", encoding="utf-8") as f:
                    f.write(f"{os.getpid()} {event} {path}\n")
            finally:
                _busy = False

    sys.addaudithook(hook)
