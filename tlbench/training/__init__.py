"""Training: `run.train(cfg)`, the LightningModule, strategies, feature cache, device choices."""
