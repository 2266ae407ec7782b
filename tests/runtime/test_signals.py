"""The interrupt callback without a real signal: Lightning's SIGTERMException can arrive where
none of our batch hooks ran first; the summary and interrupted.ckpt must still be there."""

from __future__ import annotations

from types import SimpleNamespace

from lightning.pytorch.utilities.exceptions import SIGTERMException

from tlbench.runtime import signals


def test_a_sigterm_exception_from_lightning_is_still_recorded_with_a_checkpoint(tmp_path):
    saved = []
    trainer = SimpleNamespace(
        world_size=1,
        current_epoch=3,
        global_step=42,
        save_checkpoint=lambda path, weights_only=None: saved.append((path, weights_only)),
    )
    table = SimpleNamespace(rows=[{"val/acc": 0.5}, {"val/acc": 0.7}, {"val/acc": 0.6}])
    callback = signals.InterruptCallback(signals.Trap(), tmp_path / "checkpoints", table)
    callback.on_exception(trainer, None, SIGTERMException())
    summary = callback.findings  # what the run merges into summary.json
    assert saved == [(tmp_path / "checkpoints" / "interrupted.ckpt", False)]  # public API
    assert summary["epochs"] == 3 and summary["best_val_acc"] == 0.7
    assert summary["final_val_acc"] == 0.6 and summary["interrupted_at"] == {"epoch": 3, "step": 42}


def test_under_ddp_no_interrupt_checkpoint_is_attempted(tmp_path):
    trainer = SimpleNamespace(world_size=2, save_checkpoint=lambda *a, **k: 1 / 0)
    callback = signals.InterruptCallback(signals.Trap(), tmp_path, None)
    assert callback.save(trainer) is None  # a barrier could hang when ranks stop apart
