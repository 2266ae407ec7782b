"""TensorBoard compares strategies at a glance (issue 27 item 5), read back from the event files:
every curve sits at x = epoch whether the head trained on cached features (a Lightning step per
slice of 128 batches) or on images (a step per batch), there is no `epoch` chart, and the
end-of-run hint names the run or its sweep."""

from __future__ import annotations

import csv
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tlbench.config.overrides import MULTIRUN_YAML
from tlbench.summary_file import RunSummary
from tlbench.training.job import _print_summary
from tlbench.training.run import train

# Two epochs of 40 digits at batch 16: 3 Lightning steps per epoch on images, 1 on cached features.
TWO_EPOCHS = ["model=lenet5", "logger=tensorboard", "trainer.max_epochs=2"]
TWO_EPOCHS += ["data.samples_per_class=4", "trainer.log_every_n_steps=1"]  # any step log shows
TWO_EPOCHS += ["callbacks.images.every_n_epochs=0", "callbacks.images.inputs_grid=false"]
EPOCH_TAGS = ("train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best")


def scalars(cfg, cached: bool) -> dict[str, list[int]]:
    """{tag: its steps} of the run's TensorBoard events."""
    s = train(cfg)
    assert s.status == "ok", s.error
    assert (s.feature_cache is not None) == cached, s.feature_cache
    acc = EventAccumulator(str(Path(cfg.paths.output_dir) / "tensorboard"))
    acc.Reload()
    return {tag: [e.step for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_cached_and_image_runs_share_the_epoch_axis_and_have_no_epoch_chart(cfg_factory, tmp_path):
    transfer = cfg_factory(*TWO_EPOCHS, "strategy=transfer", "strategy.cache_features=true")
    cached = scalars(transfer, cached=True)
    finetune = cfg_factory(*TWO_EPOCHS, "strategy=finetune", f"paths.output_dir={tmp_path / 'ft'}")
    images = scalars(finetune, cached=False)
    for tag in EPOCH_TAGS:
        assert cached[tag] == images[tag] == [0, 1], (tag, cached[tag], images[tag])
    assert cached["test/acc"] == images["test/acc"] == [2]  # after the last epoch
    assert "epoch" not in cached and "epoch" not in images
    assert cached["summary/best_val_acc"] == images["summary/best_val_acc"] == [2]  # HParams'
    # No step curve: its x (optimizer steps) would not be the epochs of all the other curves.
    assert "train/loss_step" not in cached and "train/loss_step" not in images
    # metrics.csv keeps Lightning's optimizer step (3 per epoch on images), not the x-axis value
    with open(tmp_path / "ft" / "metrics.csv", newline="") as f:
        assert [r["step"] for r in csv.DictReader(f)] == ["3", "6"]


def hint(run_dir: Path, capsys) -> str:
    summary = RunSummary(status="ok", model="lenet5", strategy="scratch", data="digits", seed=0)
    summary.update(best_val_acc=0.5, final_val_acc=0.5, fit_seconds=1.0, epochs=1)
    summary.update(train_images_per_second=10.0)
    _print_summary(summary, run_dir)
    return next(line for line in capsys.readouterr().out.splitlines() if "--logdir" in line)


def test_the_dashboard_hint_names_the_run_or_its_sweep(tmp_path, capsys):
    """`hydra.run.dir=/tmp/x` once said `tensorboard --logdir /tmp` (the run dir's parent)."""
    run = tmp_path / "x"
    assert hint(run, capsys).endswith(f"tensorboard --logdir {run}")
    sweep = tmp_path / "sweep"
    (sweep / "3").mkdir(parents=True)
    (sweep / MULTIRUN_YAML).write_text("hydra: {}\n")
    assert hint(sweep / "3", capsys).endswith(f"tensorboard --logdir {sweep}")
