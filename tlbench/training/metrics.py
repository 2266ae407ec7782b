"""The one definition of every classification metric tlbench reports.

Training logs `val|test/acc`, `/top5` and `/f1_macro` through the torchmetrics objects built here,
and `python -m tlbench.evaluate` computes `accuracy`, `top5_accuracy`, `macro_f1` and the
per-class numbers with the same objects, so a checkpoint evaluated on a split gets the numbers
training logged for it. How each is averaged, and what 0/0 gives: docs/architecture.md,
"Metrics".
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics import Metric
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)
from torchmetrics.functional.classification import multiclass_confusion_matrix

TOP_K = 5


def accuracy(num_classes: int, validate: bool = True) -> Metric:
    """`validate=False` skips torchmetrics' label check, a `torch.unique` that waits for the GPU
    on every update: training's per-step accuracy uses it (its labels are the datamodule's,
    which the validation metrics still check), so the step needs no host sync."""
    return MulticlassAccuracy(num_classes, average="micro", validate_args=validate)


def top5(num_classes: int) -> Metric | None:
    """None with 5 classes or fewer: top-5 says nothing there."""
    if num_classes <= TOP_K:
        return None
    return MulticlassAccuracy(num_classes, top_k=TOP_K, average="micro")


def macro_f1(num_classes: int) -> Metric:
    return MulticlassF1Score(num_classes, average="macro", zero_division=0)


def confusion_matrix(preds, targets, num_classes: int) -> np.ndarray:
    """(true, predicted) counts, shape (k, k), of predicted labels: torchmetrics' confusion
    matrix (the one evaluate writes and training's figures draw)."""
    p = torch.as_tensor(np.asarray(preds), dtype=torch.int64).ravel()
    t = torch.as_tensor(np.asarray(targets), dtype=torch.int64).ravel()
    return multiclass_confusion_matrix(p, t, int(num_classes)).numpy()


def recall_per_class(cm: np.ndarray) -> np.ndarray:
    """Per-class recall from a confusion matrix -- training logs it as `val/acc_class/<name>` --
    with NaN for a class without images (0/0): torchmetrics' MulticlassRecall(average=None)
    wherever that is defined (tested)."""
    rows = cm.sum(1).astype(float)
    return np.divide(np.diag(cm).astype(float), rows, out=np.full(len(cm), np.nan), where=rows > 0)


def _value(metric: Metric | None, logits: torch.Tensor, targets: torch.Tensor) -> float | None:
    if metric is None:
        return None
    metric.update(logits, targets)
    return float(metric.compute())


def summary(logits: torch.Tensor, targets: torch.Tensor, class_names: list[str]) -> dict:
    """Every metric of one split from all its logits (float, targets in logit order)."""
    k = len(class_names)
    logits, targets = logits.float(), targets.long()
    cm = MulticlassConfusionMatrix(k)(logits, targets)  # rows: true class
    per_class = {
        name: MetricClass(k, average=None, zero_division=0)(logits, targets)
        for name, MetricClass in (
            ("precision", MulticlassPrecision),
            ("recall", MulticlassRecall),
            ("f1", MulticlassF1Score),
        )
    }
    predicted, support = cm.sum(0), cm.sum(1)
    return {
        "num_images": len(targets),
        "loss": float(F.cross_entropy(logits, targets)),
        "accuracy": _value(accuracy(k), logits, targets),
        "top5_accuracy": _value(top5(k), logits, targets),
        "macro_f1": _value(macro_f1(k), logits, targets),
        "per_class": {
            name: {
                "precision": float(per_class["precision"][i]) if predicted[i] else None,
                "recall": float(per_class["recall"][i]) if support[i] else None,
                "f1": float(per_class["f1"][i]) if predicted[i] or support[i] else None,
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": cm.tolist(),
    }
