"""One definition of each metric (tlbench.training.metrics): evaluate and training agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tlbench.config import compose
from tlbench.training import metrics
from tlbench.training.module import TransferModule

# Issue 13's case: 3 classes, the third never a target but predicted once.
TARGETS = torch.tensor([0, 0, 1, 1])
PREDS = torch.tensor([0, 0, 1, 2])
MACRO_F1 = 5 / 9  # per class (1, 2/3, 0): torchmetrics' macro average, zero_division=0


def _logits(preds: torch.Tensor, k: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(preds, k).float() * 4.0


def test_the_three_class_case_has_one_macro_f1_everywhere():
    logits = _logits(PREDS, 3)
    names = ["a", "b", "c"]
    # evaluate's numbers
    result = metrics.summary(logits, TARGETS, names)
    assert result["macro_f1"] == pytest.approx(MACRO_F1)
    assert [result["per_class"][n]["f1"] for n in names] == pytest.approx([1.0, 2 / 3, 0.0])
    assert result["per_class"]["c"]["recall"] is None  # 0/0: class c is never a target
    assert result["per_class"]["c"]["precision"] == 0.0  # predicted once, wrongly
    # the training module's metric objects (val/f1_macro, test/f1_macro), fed batch by batch
    cfg = compose(["model=lenet5", "strategy=scratch"])
    module = TransferModule(
        model=dict(cfg.model),
        strategy=dict(cfg.strategy),
        num_classes=3,
        class_names=names,
        optimizer=dict(cfg.optimizer),
    )
    for stage in ("val", "test"):
        f1 = getattr(module, f"{stage}_f1")
        for i in range(0, 4, 2):
            f1.update(logits[i : i + 2], TARGETS[i : i + 2])
        assert float(f1.compute()) == pytest.approx(MACRO_F1)
    assert module.val_top5 is None and metrics.top5(3) is None  # 3 classes: no top-5


def test_metrics_agree_with_scikit_learn():
    from sklearn import metrics as skm

    names = [str(i) for i in range(7)]
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(200, 7, generator=gen)
    targets = torch.randint(0, 6, (200,), generator=gen)  # class 6 absent from the split
    logits[targets == 2, 2] += 3.0  # make class 2 well recognised
    m = metrics.summary(logits, targets, names)
    pred, y = logits.argmax(1).numpy(), targets.numpy()
    seen = sorted(set(y) | set(pred))  # classes that are a target or a prediction
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(
        skm.f1_score(y, pred, labels=seen, average="macro", zero_division=0)
    )
    p, r, _, s = skm.precision_recall_fscore_support(y, pred, labels=range(7), zero_division=0)
    for i, name in enumerate(names[:6]):
        assert m["per_class"][name]["recall"] == pytest.approx(r[i])
        assert m["per_class"][name]["support"] == s[i]
        if m["per_class"][name]["precision"] is not None:
            assert m["per_class"][name]["precision"] == pytest.approx(p[i])
    assert m["per_class"]["6"]["recall"] is None  # 0/0, not a made-up 0
    assert m["top5_accuracy"] == pytest.approx(
        skm.top_k_accuracy_score(y, logits.numpy(), k=5, labels=range(7))
    )
    assert m["loss"] == pytest.approx(
        skm.log_loss(y, torch.softmax(logits, 1).numpy(), labels=range(7)), rel=1e-4
    )
    assert np.array_equal(m["confusion_matrix"], skm.confusion_matrix(y, pred, labels=range(7)))
    # training's per-class accuracy (val/acc_class/<name>, figures) is the same recall
    cm = metrics.confusion_matrix(pred, y, 7)
    assert np.array_equal(cm, m["confusion_matrix"])
    recall = metrics.recall_per_class(cm)
    assert np.isnan(recall[6])
    assert recall[:6] == pytest.approx([m["per_class"][n]["recall"] for n in names[:6]])
    assert metrics.summary(logits[:, :5], targets.clamp(max=4), names[:5])["top5_accuracy"] is None


def test_evaluate_on_the_val_split_reports_what_training_logged(tiny_run, tmp_path):
    """The same checkpoint, split, pixels and precision: evaluate's accuracy and macro-F1 are the
    val/acc and val/f1_macro of the epoch best.ckpt holds (1 epoch: the only one)."""
    import csv
    import json

    from tests.helpers.checkpoints import TINY_RUN
    from tlbench.inference.evaluate import evaluate

    summary = json.loads((tiny_run / "summary.json").read_text())
    with (tiny_run / "metrics.csv").open() as fh:
        logged = [r for r in csv.DictReader(fh) if r.get("val/f1_macro")][-1]
    data = [o for o in TINY_RUN if o.startswith("data.")]
    result = evaluate(
        compose(
            [f"ckpt={tiny_run}", "split=val", f"precision={summary['precision']}", "data=digits",
             *data, f"paths.output_dir={tmp_path}"],
            config_name="evaluate",
        )
    )  # fmt: skip
    assert result["accuracy"] == pytest.approx(float(logged["val/acc"]), abs=1e-6)
    assert result["macro_f1"] == pytest.approx(float(logged["val/f1_macro"]), abs=1e-6)
    for name, values in result["per_class"].items():  # val/acc_class/<name>: per-class recall
        assert values["recall"] == pytest.approx(float(logged[f"val/acc_class/{name}"]), abs=1e-6)
