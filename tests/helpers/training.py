"""Training a composed config with a bare Lightning Trainer (no validation, no logger, fp32 on the
CPU), with the callbacks a test uses to watch it; a run can be stopped early (as a killed run
would be) and resumed from its checkpoint."""

from __future__ import annotations

import lightning as L

from tlbench.training.run import build_run


def fit_plain(cfg, callback: L.Callback, epochs=1, ckpt_dir=None, ckpt_path=None, stop_after=None):
    """Train `epochs` epochs, or stop after `stop_after` of them; returns (module, trainer)."""
    cfg.trainer.max_epochs = epochs  # the cosine schedule spans exactly the configured epochs
    datamodule, module = build_run(cfg)
    callbacks = [callback]
    if ckpt_dir:
        callbacks.append(L.pytorch.callbacks.ModelCheckpoint(dirpath=ckpt_dir, save_last=True))
    trainer = L.Trainer(
        max_epochs=stop_after or epochs,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=bool(ckpt_dir),
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        precision="32-true",
        num_sanity_val_steps=0,
        callbacks=callbacks,
    )
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=bool(ckpt_path))
    return module, trainer
