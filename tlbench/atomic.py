"""The one write-beside-then-rename, for every file someone may read at any moment.

`replacing` / `write_text` write a temporary file beside the target and `os.replace` it over
the target (the one call of `os.replace` in tlbench), so a reader sees the old file or the new
one, never half of either. Temporary files are `.<name>.<pid>.tmp.<token><suffix>`;
`remove_orphans` deletes those whose writer died. Why: docs/architecture.md, "Atomic writes".
"""

from __future__ import annotations

import errno
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# (the token is optional: older versions wrote `.<name>.<pid>.tmp<suffix>`)
ORPHAN = re.compile(r"^\..+\.(\d+)\.tmp(\.[0-9a-f]{8})?(\.\w+)?$")
# Errors of the disk, not of tlbench: the user fixes them (space, permissions), so they are
# reported in one paragraph instead of a traceback.
DISK_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


def temporary(path: str | Path, suffix: str = "") -> Path:
    """A fresh temporary name beside `path` (see the module docstring)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp.{uuid.uuid4().hex[:8]}{suffix}")


@contextmanager
def replacing(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` when the block ends, remove it
    when the block fails (a full disk then leaves the previous file and no temporary). `suffix`
    keeps an extension writers infer a format from (e.g. ".png" for savefig)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary(path, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except Exception as exc:
        code = _disk_errno(exc)
        if code is None:
            raise
        # One error that names the target (not the temporary, not torch's zip writer's words)
        raise OSError(code, os.strerror(code), str(path)) from exc
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def rename(src: str | Path, dst: str | Path) -> Path:
    """Move `src` over `dst` in one step (same folder or file system)."""
    os.replace(src, dst)
    return Path(dst)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, under another user
        return True
    return True


def remove_orphans(*folders: str | Path, legacy: tuple[str, ...] = ()) -> list[Path]:
    """Delete the temporary files of killed writes in `folders` (not below them): ours whose
    writer's pid is gone, and the `legacy` names older versions used (only where the caller
    holds the folder alone, e.g. a locked run dir). Returns what was removed."""
    removed = []
    for folder in map(Path, folders):
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            match = ORPHAN.match(entry.name)
            if (match and not _alive(int(match.group(1)))) or entry.name in legacy:
                try:
                    if entry.is_file(follow_symlinks=False):
                        os.unlink(entry.path)
                        removed.append(Path(entry.path))
                except OSError:
                    pass  # gone already, or not ours to delete: never fail a run over it
    return removed


def _disk_errno(exc: BaseException) -> int | None:
    chain = [e for e in (exc, exc.__cause__, exc.__context__) if e is not None]
    for e in chain:
        if isinstance(e, OSError) and e.errno in DISK_ERRNOS:
            return e.errno
    for e in chain:  # torch.save's zip writer hides the OSError of a full disk in its own words
        if isinstance(e, RuntimeError) and re.search(r"inline_container|file write failed", str(e)):
            return errno.ENOSPC
    return None


def disk_problem(exc: BaseException) -> str | None:
    """What is wrong with the disk when `exc` is a failed write ("no space left on the device",
    ...), else None."""
    code = _disk_errno(exc)
    return None if code is None else DISK_ERRNOS[code]
