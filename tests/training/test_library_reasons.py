"""The measured reasons why EpochTable and LearningRates are kept instead of Lightning's CSVLogger
and LearningRateMonitor (their docstrings). When an upgrade makes one of these fail, the reason
is gone: switch to Lightning's callback or logger."""

from __future__ import annotations

import csv

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException


class NamedGroups(BoringModel):
    """Two named parameter groups, no scheduler: what tlbench's lr_groups give an optimizer."""

    def configure_optimizers(self):
        w, b = self.layer.weight, self.layer.bias
        return torch.optim.SGD(
            [{"params": [w], "name": "head"}, {"params": [b], "name": "bb"}], 0.1
        )

    def training_step(self, batch, batch_idx):
        out = super().training_step(batch, batch_idx)
        self.log("train/loss", out["loss"], on_step=True, on_epoch=True)
        return out


def _fit(tmp_path, logger, epochs=2):
    trainer = L.Trainer(
        max_epochs=epochs,
        limit_train_batches=2,
        limit_val_batches=1,
        log_every_n_steps=1,
        logger=logger,
        callbacks=[LearningRateMonitor(logging_interval="epoch")],
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(NamedGroups())
    return trainer


def test_lightning_lr_monitor_needs_a_logger_and_names_by_optimizer(tmp_path):
    with pytest.raises(MisconfigurationException, match="no logger"):
        _fit(tmp_path, logger=False)
    trainer = _fit(tmp_path, CSVLogger(tmp_path, name="", version=""))
    lrs = sorted(k for k in trainer.callback_metrics if k.startswith("lr"))
    assert lrs == ["lr-SGD/bb", "lr-SGD/head"]  # tlbench's metrics.csv has lr/head, lr/bb


def test_lightning_csv_logger_is_not_one_row_per_epoch_and_drops_it_on_reopen(tmp_path):
    _fit(tmp_path, CSVLogger(tmp_path, name="", version=""), epochs=2)
    path = tmp_path / "metrics.csv"
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    epoch_rows = [r for r in rows if r["train/loss_epoch"]]
    assert len(epoch_rows) == 2 and len(rows) > 2  # rows per log call, not per epoch
    assert not any(r["lr-SGD/head"] for r in epoch_rows)  # an epoch's values in several rows
    _ = CSVLogger(tmp_path, name="", version="").experiment  # a resumed run opens it again
    assert not path.exists()
