"""A real small disk for the tests of what a full or read-only file system does to tlbench's
writes: a tmpfs mounted inside tmp_path (needs root; the test is skipped with the reason when the
mount is refused), unmounted at teardown."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _mount(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)


@contextlib.contextmanager
def small_disk(where: Path, size: str = "200k") -> Iterator[Path]:
    """A tmpfs of `size` at `where` for the duration of the block."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = _mount(["-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)])
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30)


def read_only(where: Path) -> None:
    """Remount the small disk at `where` read-only (root ignores file permissions, so a
    read-only file system is the way to refuse root's writes)."""
    done = _mount(["-o", "remount,ro", str(where)])
    assert done.returncode == 0, done.stderr


def fill(folder: Path) -> None:
    """Fill the disk holding `folder` up to its last byte."""
    with open(folder / "filler", "wb", buffering=0) as f:
        for chunk in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * chunk)
