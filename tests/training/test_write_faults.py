"""Issue 22 items 4 and 7: every file a run writes is replaced in one step beside itself, and no
time is lost from the record.

Real faults: a training process SIGKILLed mid-run (slow), a tmpfs filled to its last byte, a
file system remounted read-only at the end of a run. What a SIGKILL leaves is also rebuilt
in-process (a run stopped after epoch 0 whose summary.json never recorded its segment), the way
tests/runtime/test_resume.py does it.
"""

from __future__ import annotations

import csv
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import tlbench.training.run
from tests.helpers.cli import TWO_STEPS, run_cli
from tests.helpers.disks import fill, read_only, small_disk
from tlbench import atomic, summary_file
from tlbench.config import REPO_ROOT
from tlbench.errors import TlbenchError
from tlbench.summary_file import RunSummary
from tlbench.training import summary as run_summary
from tlbench.training.callbacks.checkpoint_io import AtomicCheckpointIO
from tlbench.training.run import train
from tlbench.training.trainer import build_trainer

FAST = [
    *TWO_STEPS,
    "test_after_fit=false",
    "callbacks.images=null",  # no PNGs: the run dir holds summary, metrics and checkpoints
]


def _rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _temporaries(*folders: Path) -> list[str]:
    return [p.name for f in folders if f.is_dir() for p in f.iterdir() if ".tmp" in p.name]


def test_every_checkpoint_is_written_through_the_atomic_io(cfg_factory, tmp_path):
    trainer, _, _ = build_trainer(cfg_factory(*FAST), tmp_path / "run", None, "32-true")
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    path = tmp_path / "run" / "checkpoints" / "best.ckpt"
    trainer.strategy.checkpoint_io.save_checkpoint({"epoch": 3}, str(path))
    assert torch.load(path, weights_only=True) == {"epoch": 3}
    assert _temporaries(path.parent) == []


def test_a_full_checkpoint_disk_keeps_the_old_file_and_names_the_problem(tmp_path):
    with small_disk(tmp_path / "disk", "200k") as disk:
        path = disk / "best.ckpt"
        io = AtomicCheckpointIO()
        io.save_checkpoint({"w": torch.zeros(10)}, str(path))
        before = path.read_bytes()
        with pytest.raises(OSError) as err:  # not torch's zip writer's inline_container.cc
            io.save_checkpoint({"w": torch.zeros(100_000)}, str(path))
        assert err.value.filename == str(path) and "inline_container" not in str(err.value)
        assert atomic.disk_problem(err.value) == "no space left on the device"
        assert path.read_bytes() == before and _temporaries(disk) == []


def test_a_run_on_a_full_disk_fails_in_one_paragraph_with_its_summary_written(
    cfg_factory, tmp_path
):
    with small_disk(tmp_path / "disk", "160k") as disk:  # summary + metrics fit, a checkpoint not
        run = disk / "run"
        with pytest.raises(TlbenchError) as err:
            train(cfg_factory(*FAST, "trainer.max_epochs=1", f"paths.output_dir={run}"))
        message = str(err.value)
        assert "full disk" in message or "no space left" in message
        assert "resume=" in message and "\n" not in message
        s = summary_file.read(run)
        assert s.status == "failed" and s.error == message  # not `running`
        assert _temporaries(run, run / "checkpoints") == []
        assert not (run / "checkpoints" / "best.ckpt").exists()  # never a 0-byte checkpoint


def test_a_disk_full_at_the_end_is_one_paragraph_not_a_missing_traceback(
    cfg_factory, tmp_path, monkeypatch
):
    with small_disk(tmp_path / "disk", "4m") as disk:
        run = disk / "run"
        # the fault, injected at the end of training (the run's last step before its summary)
        monkeypatch.setattr(tlbench.training.run.hparams, "log", lambda *a, **k: fill(disk))
        with pytest.raises(TlbenchError) as err:
            train(cfg_factory(*FAST, "trainer.max_epochs=1", f"paths.output_dir={run}"))
        message = str(err.value)
        assert "the run ended `ok`" in message and "no space left" in message
        assert "still says `running`" in message and "traceback" not in message
        assert summary_file.read(run).status == "running"  # what the message says
        assert _temporaries(run, run / "checkpoints") == []


def test_a_read_only_run_dir_refusing_the_summary_is_one_paragraph(tmp_path):
    with small_disk(tmp_path / "disk") as disk:
        summary_file.write(disk, RunSummary(status="running"))
        read_only(disk)  # root ignores permissions: a read-only file system refuses root too
        with pytest.raises(TlbenchError) as err:
            run_summary.write_final(disk, RunSummary(status="failed", error="boom. Fix: x"))
        message = str(err.value)
        assert "the run ended `failed` (boom)" in message and "read-only" in message
        assert message.count("Fix:") == 1 and summary_file.read(disk).status == "running"


def test_a_full_cache_disk_is_a_clear_warning_and_the_run_goes_on(cfg_factory, tmp_path, caplog):
    with small_disk(tmp_path / "cache", "100k") as disk:
        fill(disk)
        cfg = cfg_factory(*FAST, "strategy=transfer", "strategy.cache_features=true")
        with caplog.at_level(logging.WARNING, logger="tlbench"):
            s = train(cfg)
        assert s.status == "ok" and s.cached_features  # on the features in memory
        assert "The feature cache could not be written" in caplog.text
        assert "no space left on the device" in caplog.text and "paths.cache_dir" in caplog.text
        assert "inline_container" not in caplog.text
        # no cache, no temporary; the key's claim file (training.cache_claim) stays, empty
        assert [f for f in _files(disk) if not f.endswith(".lock")] == ["filler"]
        assert all((disk / f).stat().st_size == 0 for f in _files(disk) if f.endswith(".lock"))


def test_metrics_csv_keeps_every_row_and_killed_time_is_recovered(cfg_factory, tmp_path):
    run = tmp_path / "run"
    base = [*FAST, "trainer.max_epochs=3", f"paths.output_dir={run}"]
    train(cfg_factory(*base, "+trainer.max_steps=2"))  # stops after epoch 0, as a kill in epoch 1
    first = _rows(run)
    assert [r["epoch"] for r in first] == ["0"] and float(first[0]["time/epoch_seconds"]) > 0
    killed = summary_file.read(run)  # a SIGKILL leaves the summary of the segment's start:
    killed.update(status="running", fit_seconds=None, segments=[])
    summary_file.write(run, killed)
    done = train(cfg_factory(*base, f"resume={run}"))
    assert [r["epoch"] for r in _rows(run)] == ["0", "1", "2"]
    assert _rows(run)[0] == first[0]  # the killed segment's row, as it was
    recovered, last = done.segments
    assert recovered == {
        "fit_seconds": round(float(first[0]["time/epoch_seconds"]), 2),
        "epochs": 1,
        "estimated": True,
    }
    assert last["epochs"] == 2 and not last.get("estimated")
    assert done.fit_seconds_estimated is True
    assert done.fit_seconds == pytest.approx(recovered["fit_seconds"] + last["fit_seconds"])


def test_a_run_with_every_segment_recorded_is_not_estimated(cfg_factory, tmp_path):
    s = train(cfg_factory(*FAST, "trainer.max_epochs=1", f"paths.output_dir={tmp_path / 'r'}"))
    assert s.fit_seconds_estimated is False and len(s.segments) == 1


# -- a real SIGKILL of a training process ----------------------------------------------------------
CLI = [
    *FAST,
    "data.samples_per_class=24",
    "data.image_size=32",
    "data.batch_size=16",
    "trainer.max_epochs=4",
    "trainer.enable_progress_bar=false",
    "logger=none",
]


def _last_epoch(run_dir: Path) -> int:
    try:
        return int(torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["epoch"])
    except (OSError, RuntimeError, EOFError):
        return -1


@pytest.mark.slow  # two processes, 4 short epochs: ~60 s on a busy 2-core machine
def test_sigkill_mid_run_then_resume_keeps_all_rows_time_and_no_orphans(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tlbench", *CLI, f"hydra.run.dir={run_dir}"],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    end = time.time() + 300
    while _last_epoch(run_dir) < 1:
        assert proc.poll() is None and time.time() < end, proc.communicate()[1][-3000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # no handler runs
    proc.communicate()
    killed_rows = _rows(run_dir)  # whole: replaced in one step, never rewritten in place
    restored = _last_epoch(run_dir)
    assert len(killed_rows) >= restored + 1
    assert summary_file.read(run_dir).status == "running"
    # what a kill in the middle of a write leaves: a temporary file of a dead writer's pid
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    orphan = run_dir / "checkpoints" / f".last.ckpt.{int(dead.stdout)}.tmp.0123abcd"
    orphan.write_bytes(b"half a checkpoint")
    done = run_cli(f"resume={run_dir}")
    assert done.returncode == 0, done.stderr[-3000:]
    s = summary_file.read(run_dir)
    assert [r["epoch"] for r in _rows(run_dir)] == ["0", "1", "2", "3"]
    assert _rows(run_dir)[: restored + 1] == killed_rows[: restored + 1]
    lost = sum(float(r["time/epoch_seconds"]) for r in killed_rows[: restored + 1])
    assert s.segments[0] == {
        "fit_seconds": round(lost, 2),
        "epochs": restored + 1,
        "estimated": True,
    }
    assert s.fit_seconds_estimated is True and s.fit_seconds > lost
    assert not orphan.exists() and _temporaries(run_dir, run_dir / "checkpoints") == []
