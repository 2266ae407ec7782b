"""Issue 25 item 3: writing checkpoints is timed apart from training. `fit_seconds` leaves it
out, `checkpoint_seconds` (summary.json, per segment and in total) holds it, and metrics.csv's
`time/epoch_seconds` leaves out the writes inside an epoch (best.ckpt after validation).

The disk is made slow for real: every torch.save sleeps first, as a 0.5 GB VGG16 checkpoint on a
network file system would take seconds.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import torch

from tests.helpers.cli import TWO_STEPS
from tlbench.training.run import train

DELAY = 2.0  # seconds per checkpoint write: far above a 2-step epoch (0.1-0.3 s here, ~1 s loaded)
FAST = [*TWO_STEPS, "test_after_fit=false", "callbacks.images=null", "trainer.max_epochs=2"]


def _slow_disk(monkeypatch) -> list[int]:
    writes: list[int] = []
    real = torch.save

    def slow_save(obj, f, *args, **kwargs):
        time.sleep(DELAY)
        writes.append(1)
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", slow_save)
    return writes


def _timed_train(cfg):
    start = time.perf_counter()
    summary = train(cfg)
    return summary, time.perf_counter() - start


def test_checkpoint_writes_are_kept_out_of_fit_seconds_across_a_resume(
    cfg_factory, monkeypatch, tmp_path
):
    writes = _slow_disk(monkeypatch)
    run = tmp_path / "run"
    base = [*FAST, f"paths.output_dir={run}"]
    first, wall1 = _timed_train(cfg_factory(*base, "+trainer.max_steps=2"))  # epoch 0 only
    n1 = len(writes)
    second, wall2 = _timed_train(cfg_factory(*base, f"resume={run}"))  # epoch 1
    n2 = len(writes) - n1
    assert first.status == second.status == "ok" and second.epochs == 2
    assert n1 >= 2 and n2 >= 1  # best + last after epoch 0; last (and best if it improved)

    seg1, seg2 = second.segments
    assert seg1["checkpoint_seconds"] >= n1 * DELAY and seg2["checkpoint_seconds"] >= n2 * DELAY
    assert second.checkpoint_seconds == round(
        seg1["checkpoint_seconds"] + seg2["checkpoint_seconds"], 2
    )
    # each segment's fit time leaves its writes out: both fit inside the call's wall time
    assert seg1["fit_seconds"] + seg1["checkpoint_seconds"] <= wall1
    assert seg2["fit_seconds"] + seg2["checkpoint_seconds"] <= wall2
    assert second.fit_seconds == round(seg1["fit_seconds"] + seg2["fit_seconds"], 2)

    # the epochs' own times leave out best.ckpt, written inside epoch 0 (after validation)
    with open(Path(run) / "metrics.csv", newline="") as f:
        epoch_seconds = [float(r["time/epoch_seconds"]) for r in csv.DictReader(f)]
    assert len(epoch_seconds) == 2 and epoch_seconds[0] < DELAY
    assert sum(epoch_seconds) <= second.fit_seconds + 0.02
