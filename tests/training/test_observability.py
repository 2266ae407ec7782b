"""Observability: TensorBoard scalars, images and hparams read back from the event files, the
run dir's PNGs, and the drawing functions on known inputs."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from tlbench import summary_file
from tlbench.errors import TlbenchError
from tlbench.training import hparams, visuals
from tlbench.training import summary as run_summary
from tlbench.training.callbacks import ImageSummaries, LearningRates
from tlbench.training.job import _print_summary
from tlbench.training.run import train

# A from-scratch LeNet-5 keeps the end-to-end runs to seconds; the observability does not
# depend on the backbone.
FAST = ["model=lenet5", "strategy=scratch", "logger=tensorboard"]


def events(run_dir) -> EventAccumulator:
    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0, "tensors": 0})
    acc.Reload()
    return acc


def hparams_session(acc: EventAccumulator):
    content = acc.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    return experiment.experiment, start.session_start_info


def test_run_logs_scalars_images_hparams_and_pngs(cfg_factory, capsys):
    cfg = cfg_factory(
        *FAST, "trainer.max_epochs=3", "optimizer.lr=0.002", "callbacks.images.every_n_epochs=2"
    )
    s = train(cfg)
    assert s.status == "ok"
    run_dir = Path(cfg.paths.output_dir)
    acc = events(run_dir)
    tags = acc.Tags()

    scalars = set(tags["scalars"])
    expected = {"train/loss", "train/acc", "val/loss", "val/acc"}
    expected |= {"val/acc_best", "val/top5", "val/f1_macro", "test/loss", "test/acc"}
    expected |= {"test/top5", "test/f1_macro", "time/epoch_seconds", "train/images_per_sec"}
    expected |= {
        "lr/head",
        "lr/backbone",
    }  # one per optimizer group (tlbench.training.strategies names)
    expected |= {f"val/acc_class/{d}" for d in range(10)}  # digits: 10 classes <= 20
    assert expected <= scalars, expected - scalars
    assert not any(t.startswith("lr-") for t in scalars)  # Lightning's `lr-AdamW/...` is gone
    lr = [e.value for e in acc.Scalars("lr/head")]
    assert lr[0] == pytest.approx(0.002)  # the configured LR at epoch 0 (cosine decays it after)
    assert len(lr) == 3 and lr[2] < lr[1] < lr[0]
    for tag in ("val/top5", "val/f1_macro"):
        values = [e.value for e in acc.Scalars(tag)]
        assert len(values) == 3 and all(0.0 <= v <= 1.0 for v in values)
    top5, top1 = acc.Scalars("val/top5")[-1].value, acc.Scalars("val/acc")[-1].value
    assert top5 >= top1

    images = set(tags["images"])
    for split in ("val", "test"):
        assert {
            f"{split}/confusion_matrix",
            f"{split}/per_class_acc",
            f"{split}/predictions",
        } <= images
    assert "train/inputs" in images
    assert len(acc.Images("train/inputs")) == 1  # once per run
    # every_n_epochs=2 over 3 epochs: epoch 1 and the last (2), at x = epoch like the scalars
    assert [e.step for e in acc.Images("val/confusion_matrix")] == [1, 2]
    grid = acc.Images("val/predictions")[-1]
    assert grid.width > 200 and grid.height > 200

    experiment, session = hparams_session(acc)
    logged = {k: v for k, v in session.hparams.items()}
    for key in ("data", "model", "strategy", "weights", "lr", "batch_size", "image_size"):
        assert key in logged, key
    for key in ("label_budget", "seed", "precision", "samples_per_class"):
        assert key in logged, key
    assert logged["model"].string_value == "lenet5"
    assert logged["strategy"].string_value == "scratch"
    assert logged["label_budget"].string_value == "8/class"
    assert logged["lr"].number_value == pytest.approx(0.002)
    assert logged["weights"].string_value == "random"  # scratch: the weights' origin
    metric_tags = {m.name.tag for m in experiment.metric_infos}
    assert {"summary/best_val_acc", "summary/test_acc", "summary/fit_seconds"} <= metric_tags
    # The metric values the HParams table shows are the run's summary.json values.
    assert acc.Scalars("summary/test_acc")[-1].value == pytest.approx(s.test_acc, abs=1e-6)
    assert acc.Scalars("summary/best_val_acc")[-1].value == pytest.approx(s.best_val_acc)

    for name in ("confusion_matrix.png", "predictions.png"):
        with Image.open(run_dir / name) as im:
            im.verify()
        with Image.open(run_dir / name) as im:
            assert im.format == "PNG" and min(im.size) > 200

    with open(run_dir / "metrics.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and {"lr/head", "val/top5", "val/f1_macro"} <= set(rows[0])
    assert summary_file.read(run_dir).status == "ok"

    _print_summary(s, run_dir)
    out = capsys.readouterr().out
    assert "confusion_matrix.png" in out and "predictions.png" in out


def test_images_off_and_pngs_without_test(cfg_factory):
    """every_n_epochs=0 and no input grid: no images in TensorBoard, yet the run dir still gets
    the PNGs, from the last validation epoch since no test runs."""
    cfg = cfg_factory(
        *FAST,
        "callbacks.images.every_n_epochs=0",
        "callbacks.images.inputs_grid=false",
        "test_after_fit=false",
    )
    s = train(cfg)
    assert s.status == "ok" and s.test_acc is None
    run_dir = Path(cfg.paths.output_dir)
    acc = events(run_dir)
    assert acc.Tags()["images"] == []
    experiment, session = hparams_session(acc)
    metric_tags = {m.name.tag for m in experiment.metric_infos}
    assert "summary/best_val_acc" in metric_tags and "summary/test_acc" not in metric_tags
    for name in ("confusion_matrix.png", "predictions.png"):
        with Image.open(run_dir / name) as im:
            im.verify()


def test_no_logger_still_writes_pngs_and_lr_columns(cfg_factory):
    cfg = cfg_factory("model=lenet5", "strategy=scratch")  # cfg_factory: logger=none
    s = train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    assert s.status == "ok" and not (run_dir / "tensorboard").exists()
    assert (run_dir / "confusion_matrix.png").is_file() and (run_dir / "predictions.png").is_file()
    with open(run_dir / "metrics.csv", encoding="utf-8") as f:
        header = f.readline().strip().split(",")
    assert "lr/head" in header and "val/f1_macro" in header


def test_cached_features_still_get_prediction_grids(cfg_factory, tmp_path):
    """The default transfer run trains on cached backbone features: the batches hold no pixels,
    so the grids take the images from the (unshuffled) split, checked against labels."""
    cfg = cfg_factory("logger=tensorboard", f"paths.cache_dir={tmp_path / 'cache'}")
    s = train(cfg)
    assert s.status == "ok" and s.cached_features is True
    run_dir = Path(cfg.paths.output_dir)
    images = set(events(run_dir).Tags()["images"])
    assert {"val/predictions", "test/predictions", "test/confusion_matrix"} <= images
    # the training batches hold features, so the inputs grid comes from the pixels they came from
    assert "train/inputs" in images and len(events(run_dir).Images("train/inputs")) == 1
    with Image.open(run_dir / "predictions.png") as im:
        im.verify()


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")  # no Trainer here
def test_top5_only_with_more_than_five_classes(cfg_factory):
    from tlbench.training.run import build_run

    _, three = build_run(cfg_factory("model=lenet5", "strategy=scratch", "data.classes=[0,1,2]"))
    _, ten = build_run(cfg_factory("model=lenet5", "strategy=scratch"))
    assert three.val_top5 is None and three.test_top5 is None and three.val_f1 is not None
    assert ten.val_top5 is not None
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    out = three.validation_step((x, y), 0)  # logs val/f1_macro, no val/top5; returns preds
    assert out["preds"].shape == (4,) and int(out["preds"].max()) < 3


# -- drawing functions on known inputs -------------------------------------------------------
def test_confusion_counts_rows_and_per_class_accuracy():
    targets = np.array([0, 0, 0, 1, 1, 2])
    preds = np.array([0, 0, 1, 1, 0, 2])
    cm = visuals.confusion_counts(preds, targets, 4)
    assert cm.tolist() == [[2, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    norm = visuals.normalise_rows(cm)
    assert norm[0].tolist() == pytest.approx([2 / 3, 1 / 3, 0, 0]) and norm[3].sum() == 0
    acc = visuals.per_class_accuracy(cm)
    assert acc[:3].tolist() == pytest.approx([2 / 3, 0.5, 1.0]) and np.isnan(acc[3])


def test_denormalise_inverts_normalize():
    from torchvision.transforms import v2 as T

    x = torch.rand(2, 3, 8, 8)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    assert torch.allclose(visuals.denormalise(T.Normalize(mean, std)(x), mean, std), x, atol=1e-6)


def _red_pixels(img: np.ndarray) -> int:
    r, g, b = (img[..., i].astype(int) for i in range(3))
    return int(((r > 150) & (g < 60) & (b < 60)).sum())


def test_prediction_grid_marks_wrong_ones_in_red():
    images = torch.full((4, 1, 32, 32), 0.5)  # grey: no red anywhere but the marks
    names = ["cat", "dog"]
    right = visuals.to_array(visuals.grid_figure(images, [0, 1, 0, 1], names, "t", [0, 1, 0, 1]))
    wrong = visuals.to_array(visuals.grid_figure(images, [0, 1, 0, 1], names, "t", [1, 1, 0, 1]))
    assert right.dtype == np.uint8 and right.ndim == 3 and right.shape[-1] == 3
    assert _red_pixels(right) == 0 and _red_pixels(wrong) > 100


def test_many_classes_stay_small_and_show_the_worst():
    k = 100
    cm = np.diag(np.arange(1, k + 1)) + 1  # every class some errors; class 0 the worst
    names = [f"class_{i}" for i in range(k)]
    fig = visuals.confusion_figure(cm, names, "t")
    assert max(fig.get_size_inches()) < 10
    bars = visuals.per_class_figure(visuals.per_class_accuracy(cm), names, "t")
    labels = [t.get_text() for t in bars.axes[0].get_yticklabels()]
    assert len(labels) == visuals.BARS_UP_TO and labels[0] == "class_0"
    assert "worst 30 of 100" in bars.axes[0].get_title()


def test_png_is_written_atomically_and_valid(tmp_path):
    cm = visuals.confusion_counts([0, 1, 1], [0, 1, 0], 2)
    path = visuals.save_png(visuals.confusion_figure(cm, ["a", "b"], "t"), tmp_path / "cm.png")
    assert [p.name for p in tmp_path.iterdir()] == ["cm.png"]
    with Image.open(path) as im:
        im.verify()


# -- config errors and hparams flattening -----------------------------------------------------
def test_bad_settings_name_the_key():
    with pytest.raises(TlbenchError, match="callbacks.images.every_n_epochs"):
        ImageSummaries(every_n_epochs=-1)
    with pytest.raises(TlbenchError, match="callbacks.learning_rates.logging_interval"):
        LearningRates(logging_interval="batch")


def test_validation_images_every_n_epochs_and_the_last():
    def due(every, epoch, max_epochs):
        return ImageSummaries(every_n_epochs=every)._due(
            SimpleNamespace(current_epoch=epoch, max_epochs=max_epochs)
        )

    assert [e for e in range(10) if due(3, e, 10)] == [2, 5, 8, 9]
    assert [e for e in range(7) if due(3, e, -1)] == [2, 5]  # no epoch limit: no "last"
    assert not any(due(0, e, 5) for e in range(5))


def test_hparams_are_flat_scalars(cfg_factory):
    cfg = cfg_factory("data.train_fraction=0.25", "data.samples_per_class=null")
    summary = run_summary.start(cfg)
    summary.update(precision="32-true", best_val_acc=0.5, test_acc=None, fit_seconds=3.0)
    params = hparams.params(cfg, summary)
    assert all(isinstance(v, (bool, int, float, str)) for v in params.values())
    assert params["label_budget"] == "25 % of train" and params["train_fraction"] == 0.25
    assert "samples_per_class" not in params
    assert params["optimizer"] == "AdamW" and params["data"] == "digits"
    assert hparams.metrics(summary) == {"summary/best_val_acc": 0.5, "summary/fit_seconds": 3.0}
