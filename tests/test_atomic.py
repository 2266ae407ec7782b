"""tlbench.atomic: the one write-beside-then-rename helper."""

import pytest

from tlbench import atomic


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
