"""TensorBoard's HParams view: each run's hyper-parameters with its final metrics.

Logged once, at the end of a run (after the test), so the HParams table and parallel-coordinates
view of `tensorboard --logdir <sweep dir>` compare transfer, finetune and scratch runs directly.
The metric tags (`summary/*`) are new scalars at the last step, kept apart from the
`val/*` / `test/*` curves so they do not add a stray point to them.
"""

from __future__ import annotations

from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig

# summary.json field -> hparams metric tag
METRICS = {
    "best_val_acc": "summary/best_val_acc",
    "final_val_acc": "summary/final_val_acc",
    "test_acc": "summary/test_acc",
    "fit_seconds": "summary/fit_seconds",
    "train_images_per_second": "summary/train_images_per_sec",
}


def label_budget(summary: dict) -> str:
    """One readable column for the label budget: '10/class', '10%' or 'all'."""
    if summary.get("samples_per_class") is not None:
        return f"{summary['samples_per_class']}/class"
    if summary.get("train_fraction") is not None:
        return f"{100 * float(summary['train_fraction']):g}%"
    return "all"


def _scalar(value):
    """TensorBoard's hparams take bool / int / float / str only."""
    if value is None:
        return "none"
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def params(cfg: DictConfig, summary: dict) -> dict:
    """Flat hyper-parameters of a run: what a sweep varies and what explains its results."""
    optimizer = str((cfg.get("optimizer") or {}).get("_target_", "none")).rsplit(".", 1)[-1]
    scheduler = cfg.get("scheduler") or {}
    out = {
        "data": summary.get("data"),
        "model": summary.get("model"),
        "strategy": summary.get("strategy"),
        "weights": summary.get("weights"),
        "lr": summary.get("lr"),
        "batch_size": summary.get("batch_size"),
        "image_size": summary.get("image_size"),
        "label_budget": label_budget(summary),
        "seed": summary.get("seed"),
        "precision": summary.get("precision"),
        "optimizer": optimizer,
        "scheduler": str(scheduler.get("_target_", "none")).rsplit(".", 1)[-1],
        "max_epochs": summary.get("max_epochs"),
        "augment": (cfg.get("data") or {}).get("augment"),
        "trainable_params": summary.get("trainable_params"),
    }
    # Numeric budgets too, so the parallel-coordinates view can order them (only when set).
    for key in ("samples_per_class", "train_fraction"):
        if summary.get(key) is not None:
            out[key] = summary[key]
    return {k: _scalar(v) for k, v in out.items()}


def metrics(summary: dict) -> dict[str, float]:
    return {
        tag: float(summary[key]) for key, tag in METRICS.items() if summary.get(key) is not None
    }


def log(loggers, cfg: DictConfig, summary: dict, step: int | None = None) -> None:
    """Write the hparams session into every TensorBoard logger (others are left alone). Lightning
    has finalized the loggers after fit/test; finalize again to flush and close the new file."""
    for lg in loggers:
        if isinstance(lg, TensorBoardLogger):
            lg.log_hyperparams(params(cfg, summary), metrics(summary), step=step)
            lg.finalize("success")
