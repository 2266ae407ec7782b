"""tlbench.atomic: the one write-beside-then-rename helper."""

import os
import subprocess
import sys
import time

import pytest

from tests.helpers.disks import fill, small_disk
from tlbench import atomic
from tlbench.config import REPO_ROOT


def test_write_text_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "deep" / "summary.json"
    atomic.write_text(path, "old")
    atomic.write_text(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in path.parent.iterdir()] == ["summary.json"]


def test_a_failed_write_keeps_the_old_file_whole(tmp_path):
    path = tmp_path / "report.md"
    atomic.write_text(path, "complete")
    with pytest.raises(RuntimeError), atomic.replacing(path, suffix=".png") as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert path.read_text() == "complete"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


# -- issue 22: unique temporaries beside the target, orphans of killed writers, full disks --------
def test_temporaries_are_beside_the_target_and_unique(tmp_path):
    names = {atomic.temporary(tmp_path / "best.ckpt").name for _ in range(50)}
    assert len(names) == 50
    tmp = atomic.temporary(tmp_path / "report.png", suffix=".png")
    assert tmp.parent == tmp_path and tmp.name.endswith(".png")
    assert atomic.ORPHAN.match(tmp.name).group(1) == str(os.getpid())


def _killed_writer(path) -> subprocess.Popen:
    """A real process writing `path` through tlbench.atomic, slowly enough to be killed mid-write."""
    code = (
        "import sys, time\n"
        "from tlbench import atomic\n"
        "with atomic.replacing(sys.argv[1]) as tmp:\n"
        "    with open(tmp, 'w') as f:\n"
        "        for _ in range(100000):\n"
        "            f.write('x' * 1000); f.flush(); time.sleep(0.001)\n"
    )
    return subprocess.Popen([sys.executable, "-c", code, str(path)], cwd=REPO_ROOT)


def test_a_sigkill_mid_write_leaves_the_old_file_and_the_next_run_removes_the_orphan(tmp_path):
    path = tmp_path / "metrics.csv"
    atomic.write_text(path, "epoch\n0\n")
    proc = _killed_writer(path)
    end = time.time() + 60
    while not [p for p in tmp_path.iterdir() if p.name != "metrics.csv"]:
        assert proc.poll() is None and time.time() < end
        time.sleep(0.02)
    time.sleep(0.2)  # well into the write
    proc.kill()
    proc.wait()
    orphans = [p for p in tmp_path.iterdir() if p.name != "metrics.csv"]
    assert len(orphans) == 1 and orphans[0].stat().st_size > 0  # the killed writer's half file
    assert path.read_text() == "epoch\n0\n"  # the reader still sees the whole old table
    live = atomic.temporary(tmp_path / "summary.json")  # a live writer's (this process)
    live.write_text("{")
    legacy = tmp_path / "last.ckpt.tmp"
    legacy.write_text("old")
    removed = atomic.remove_orphans(tmp_path, legacy=("last.ckpt.tmp",))
    assert sorted(removed) == sorted([orphans[0], legacy])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["metrics.csv", live.name])


def test_a_full_disk_keeps_the_previous_file_and_no_temporary(tmp_path):
    with small_disk(tmp_path / "disk") as disk:
        path = disk / "summary.json"
        atomic.write_text(path, "previous")
        fill(disk)
        with pytest.raises(OSError) as err:
            atomic.write_text(path, "y" * 100_000)
        assert atomic.disk_problem(err.value) == "no space left on the device"
        assert path.read_text() == "previous"
        assert sorted(p.name for p in disk.iterdir()) == ["filler", "summary.json"]
