"""The metrics a callback's `monitor:` may name, checked before training: an EarlyStopping or
ModelCheckpoint watching a metric tlbench never logs fails in Lightning only after the first epoch.
"""

from __future__ import annotations

import fnmatch

from omegaconf import DictConfig

from tlbench.errors import TlbenchError, nearest

# What a callback's `monitor:` may name during fit: the metrics tlbench.training logs (module.py,
# callbacks/). tests/config/test_run_values.py checks a real run's metrics.csv against this list.
MONITORABLE = (
    "val/acc",
    "val/loss",
    "val/f1_macro",
    "val/top5",
    "val/acc_best",
    "val/acc_class/*",
    "train/loss",
    "train/acc",
    "train/images_per_sec",
    "lr/*",
    "time/epoch_seconds",
)


def check_monitors(cfg: DictConfig) -> None:
    """A callback's `monitor` (EarlyStopping, ModelCheckpoint) names a metric tlbench logs;
    otherwise Lightning fails only after the first epoch."""
    for name, node in (cfg.get("callbacks") or {}).items():
        monitor = node.get("monitor") if isinstance(node, DictConfig) else None
        if monitor is None or any(fnmatch.fnmatchcase(str(monitor), m) for m in MONITORABLE):
            continue
        close = nearest(str(monitor), [m for m in MONITORABLE if "*" not in m], n=2)
        raise TlbenchError(
            "this callback watches a metric that tlbench does not log (Lightning would fail "
            "after the first epoch)",
            key=f"callbacks.{name}.monitor",
            value=monitor,
            allowed=", ".join(MONITORABLE) + " (test/* exists only after fit)",
            fix=f"e.g. callbacks.{name}.monitor={close[0] if close else 'val/acc'}",
        )
