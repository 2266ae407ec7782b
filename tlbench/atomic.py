"""The one way tlbench writes a file that someone else may read at any moment (summary.json while
a sweep's report reads it, last.ckpt while a SIGKILL may land, the report, PNGs, the feature
cache, ranking files): write beside it, then rename over it. `os.replace` is atomic on POSIX and
Windows, so a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path` (same folder, so the rename never crosses devices;
    pid in the name, so parallel writers do not collide); rename it over `path` when the block
    ends, remove it when the block fails. `suffix` keeps an extension writers infer a format
    from (e.g. ".png" for savefig)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
