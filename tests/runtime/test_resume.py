"""Checkpoints every epoch and exact resume (issue 15 items 1-2, issue 14 item 4), in-process.

A kill right after epoch k is simulated by stopping the run there (`+trainer.max_steps`, same
max_epochs so the same cosine schedule): what is on disk then is exactly what a SIGKILL in epoch
k + 1 leaves (last.ckpt of epoch k, metrics rows 0..k). The real SIGKILL is in
tests/runtime/test_reliability.py (slow).
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tests.helpers.cli import TWO_STEPS, run_cli
from tlbench import summary_file
from tlbench.runtime.resume import LAST
from tlbench.training.run import train

FAST = [
    *TWO_STEPS,
    "test_after_fit=false",
]
STEPS_PER_EPOCH = 2


def _rows(run_dir) -> list[dict]:
    with open(Path(run_dir) / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _lrs(run_dir) -> list[float]:
    return [float(r["lr/head"]) for r in _rows(run_dir)]


def _epoch(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])


@pytest.mark.slow  # three short runs: ~35 s on a busy 2-core machine
def test_last_ckpt_every_epoch_and_resume_follows_the_straight_run(cfg_factory, tmp_path):
    straight = train(cfg_factory(*FAST, "trainer.max_epochs=3", f"paths.output_dir={tmp_path}/a"))
    a = Path(straight.run_dir)
    assert _epoch(a / "checkpoints" / "last.ckpt") == 2  # the final epoch, not the best one
    assert straight.last_checkpoint == str(a / "checkpoints" / "last.ckpt")
    best_epoch = max(range(3), key=lambda e: float(_rows(a)[e]["val/acc"]))  # first max wins
    assert _epoch(a / "checkpoints" / "best.ckpt") == best_epoch
    assert sorted(p.name for p in (a / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]

    b = tmp_path / "b"
    stopped = [*FAST, "trainer.max_epochs=3", f"paths.output_dir={b}"]
    train(cfg_factory(*stopped, f"+trainer.max_steps={STEPS_PER_EPOCH}"))  # "killed" after epoch 0
    assert _epoch(b / "checkpoints" / "last.ckpt") == 0 and len(_rows(b)) == 1
    resumed = train(cfg_factory(*stopped, f"resume={b}"))
    assert resumed.resumed_from == str(b / "checkpoints" / "last.ckpt")
    assert [r["epoch"] for r in _rows(b)] == ["0", "1", "2"]
    assert [r["step"] for r in _rows(b)] == [r["step"] for r in _rows(a)]
    assert _lrs(b) == pytest.approx(_lrs(a), rel=1e-6)  # the same LR every epoch
    assert _epoch(b / "checkpoints" / "last.ckpt") == 2 and resumed.epochs == 3
    # issue 14: a resumed run's cost covers all its segments
    segments = resumed.segments
    assert [s["epochs"] for s in segments] == [1, 2]
    assert resumed.fit_seconds == pytest.approx(sum(s["fit_seconds"] for s in segments), abs=0.02)
    images = sum(s["images"] for s in segments)
    assert images == 3 * 20
    rate = images / sum(s["train_seconds"] for s in segments)
    assert resumed.train_images_per_second == pytest.approx(rate, rel=0.01)


def test_extending_max_epochs_rebuilds_the_schedule_for_the_new_length(cfg_factory, tmp_path):
    run = tmp_path / "run"
    base = [*FAST, f"paths.output_dir={run}"]
    first = train(cfg_factory(*base, "trainer.max_epochs=2"))
    assert first.status == "ok"
    extended = train(cfg_factory(*base, "trainer.max_epochs=4", f"resume={run}"))
    assert extended.status == "ok" and extended.epochs == 4
    assert extended.schedule_rebuilt["changed"] == {"T_max": [2, 4]}
    lr0 = float(_rows(run)[0]["lr/head"])
    cosine = [lr0 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]  # a straight 4-epoch run
    lrs = _lrs(run)
    assert lrs[:2] == pytest.approx([lr0, lr0 / 2], rel=1e-5)  # history: the 2-epoch schedule
    assert lrs[2:] == pytest.approx(cosine[2:], rel=1e-5)  # then the 4-epoch one: no zero, no rise
    assert all(lr > 0 for lr in lrs) and lrs[2] > lrs[3]
    assert [s["epochs"] for s in extended.segments] == [2, 2]
    # the second segment wrote into the same files: never best-v1.ckpt / last-v1.ckpt
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]


def test_skip_completed_continues_an_interrupted_job_from_its_last_ckpt(cfg_factory, tmp_path):
    run = tmp_path / "job"
    base = [*FAST, "trainer.max_epochs=2", f"paths.output_dir={run}"]
    train(cfg_factory(*base, f"+trainer.max_steps={STEPS_PER_EPOCH}"))  # epoch 0 done
    summary = summary_file.read(run)
    summary_file.write(run, replace(summary, status="interrupted"))  # as SIGINT leaves it
    again = train(cfg_factory(*base, "skip_completed=true"))
    assert again.status == "ok" and again.resumed_from == str(run / LAST)
    assert [s["epochs"] for s in again.segments] == [1, 1]  # epoch 0 was not trained again
    assert [r["epoch"] for r in _rows(run)] == ["0", "1"]


def test_a_corrupt_feature_cache_is_named_moved_aside_and_rebuilt(cfg_factory, tmp_path, caplog):
    # lenet5 has no pretrained weights: transfer freezes a random backbone (warned), and its
    # frozen features are cached -- the path under test
    overrides = [*FAST, "strategy=transfer", "trainer.max_epochs=1"]
    first = train(cfg_factory(*overrides, f"paths.output_dir={tmp_path}/a"))
    assert first.cached_features and "no pretrained weights" in first.warnings[0]
    cache = Path(first.feature_cache)
    cache.write_bytes(cache.read_bytes()[:100])  # truncated, as a crash elsewhere could leave it
    with caplog.at_level(logging.WARNING, logger="tlbench"):
        second = train(cfg_factory(*overrides, f"paths.output_dir={tmp_path}/b"))
    assert second.status == "ok" and second.cached_features
    assert cache.with_name(cache.name + ".corrupt").is_file() and cache.is_file()
    assert str(cache) in caplog.text and "moved aside" in caplog.text


def test_a_run_killed_during_its_test_resumes_to_the_test_only(cfg_factory, tmp_path):
    run = tmp_path / "run"
    base = [*FAST, "trainer.max_epochs=1", f"paths.output_dir={run}"]
    train(cfg_factory(*base))
    summary_file.write(run, replace(summary_file.read(run), status="running"))  # SIGKILL in test
    again = train(cfg_factory(*base, "test_after_fit=true", f"resume={run}"))
    assert again.status == "ok" and again.test_acc is not None and again.epochs == 1
    assert [s["epochs"] for s in again.segments] == [1, 0]  # nothing trained twice
    assert again.last_checkpoint == str(run / LAST) and len(_rows(run)) == 1


@pytest.mark.parametrize("content", ["truncated", "pickle"])
def test_resume_reads_last_ckpt_safely_before_anything_runs(tmp_path, content):
    """resume= reads last.ckpt through tlbench.safe_load before Hydra starts: a truncated file or
    a planted pickle is one paragraph (exit 2), never torch's advice to use weights_only=False,
    never unpickled, and the run dir is left as it was."""
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    (run / ".hydra" / "overrides.yaml").write_text("- model=lenet5\n- data.image_size=32\n")
    (run / "summary.json").write_text('{"status": "interrupted"}')
    marker = tmp_path / "marker"
    ckpt = run / "checkpoints" / "last.ckpt"
    if content == "truncated":
        ckpt.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 2)
    else:

        class Payload:
            def __reduce__(self):
                return (open, (str(marker), "w"))

        ckpt.write_bytes(__import__("pickle").dumps(Payload(), protocol=2))
    before = sorted(p.name for p in run.rglob("*"))
    proc = run_cli(f"resume={run}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "weights_only=False" not in proc.stderr
    assert "last.ckpt" in proc.stderr and not marker.exists()
    assert sorted(p.name for p in run.rglob("*")) == before
