"""What trained (WeightDrift): per-stage relative drift from the run's start, the head's norm,
BatchNorm statistics, and a warning when a stage the strategy froze changes anyway."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from tlbench.models.stages import stage_names
from tlbench.training.callbacks.weight_drift import WeightDrift
from tlbench.training.run import build_run

TINY_MINI = ["model=mini_vgg", "trainer.precision=32-true", "data.image_size=32"]


def fit(cfg, callback, steps=3):
    datamodule, module = build_run(cfg)
    trainer = L.Trainer(
        max_steps=steps, limit_val_batches=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
        precision="32-true", num_sanity_val_steps=0, callbacks=[callback],
    )  # fmt: skip
    trainer.fit(module, datamodule=datamodule)
    return module


def test_stage_names_are_common_module_paths():
    groups = [["conv1.weight", "bn1.weight"], ["layer1.0.conv1.weight", "layer1.1.bn2.bias"],
              ["features.3.weight", "features.3.bias"]]  # fmt: skip
    assert stage_names(groups) == ["conv1+bn1", "layer1", "features.3"]


def test_finetune_moves_every_stage_and_its_bn_statistics(cfg_factory):
    drift = WeightDrift()
    fit(cfg_factory(*TINY_MINI, "strategy=finetune", "strategy.warmup_epochs=0"), drift)
    f = drift.findings
    assert f["weight_drift"] and all(v > 0 for v in f["weight_drift"].values()), f
    assert any(f["bn_stats_changed"].values()) and "weight_drift_warnings" not in f
    assert f["head_norm"] > 0 and f["weight_drift_seconds"] >= 0


def test_partial_moves_only_its_stages(cfg_factory):
    drift = WeightDrift()
    partial = ["strategy=partial", "strategy.last_n_stages=1", "strategy.cache_features=false"]
    fit(cfg_factory(*TINY_MINI, *partial), drift)
    values = list(drift.findings["weight_drift"].values())
    assert values[0] == 0.0 and values[-1] > 0  # input side frozen, the last stage trained
    assert drift.findings["bn_stats_changed"][drift.names[0]] is False


def test_a_frozen_stage_that_changes_is_a_warning(cfg_factory):
    """The bug this guards against: a layer the strategy froze is updated anyway (here by hand,
    as a buggy callback or a re-freeze on resume would)."""

    class Sneaky(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, *args):
            first = next(iter(pl_module.net.parameters()))
            with torch.no_grad():
                first.add_(0.01)

    drift = WeightDrift()
    cfg = cfg_factory(*TINY_MINI, "strategy=partial", "strategy.last_n_stages=1")
    datamodule, module = build_run(cfg)
    trainer = L.Trainer(max_steps=2, limit_val_batches=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, accelerator="cpu", num_sanity_val_steps=0,
                        callbacks=[drift, Sneaky()])  # fmt: skip
    trainer.fit(module, datamodule=datamodule)
    warnings = drift.findings["weight_drift_warnings"]
    assert warnings == [f"stage {drift.names[0]}: parameters the strategy froze changed"]


def test_cached_transfer_is_frozen_by_construction(cfg_factory):
    from tlbench.training.run import _maybe_cache_features

    cfg = cfg_factory(*TINY_MINI, "strategy=transfer", "strategy.cache_features=true")
    datamodule, module = build_run(cfg)
    datamodule, _ = _maybe_cache_features(cfg, module, datamodule, "32-true", {})
    assert module.inputs == "features"
    drift = WeightDrift()
    trainer = L.Trainer(max_epochs=1, limit_val_batches=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, accelerator="cpu", num_sanity_val_steps=0,
                        callbacks=[drift])  # fmt: skip
    trainer.fit(module, datamodule=datamodule)
    f = drift.findings
    assert (
        set(f["weight_drift"].values()) == {0.0}
        and "frozen by construction" in f["weight_drift_basis"]
    )
    assert f["head_norm"] > 0


@pytest.mark.parametrize("strategy", ["transfer"])
def test_transfer_on_images_moves_nothing_below_the_head(cfg_factory, strategy):
    drift = WeightDrift()
    fit(cfg_factory(*TINY_MINI, f"strategy={strategy}", "strategy.cache_features=false"), drift)
    assert set(drift.findings["weight_drift"].values()) == {0.0}
    assert not any(drift.findings["bn_stats_changed"].values())
    assert "weight_drift_warnings" not in drift.findings


def test_a_run_records_what_trained_in_its_summary_and_metrics(cfg_factory):
    """train(): summary.json's weight_drift / bn_stats_changed, drift/<stage> per epoch in
    metrics.csv, and the callback's own time, a small part of the fit time."""
    import csv

    from tlbench.training.run import train

    cfg = cfg_factory(*TINY_MINI, "strategy=finetune", "trainer.max_epochs=2")
    s = train(cfg)
    assert s.status == "ok"
    assert set(s.weight_drift) == {"features", "classifier"}
    assert all(v > 0 for v in s.weight_drift.values()) and s.head_norm > 0
    assert s.bn_stats_changed["features"] is True
    assert s.weight_drift_seconds < 0.05 * s.fit_seconds + 0.5
    with open(f"{cfg.paths.output_dir}/metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert float(rows[-1]["drift/features"]) == pytest.approx(s.weight_drift["features"], rel=1e-3)
