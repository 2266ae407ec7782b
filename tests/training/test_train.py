"""End to end: the CLI as users type it, and train(cfg) as tools call it."""

import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers.cli import run_cli
from tlbench import summary_file
from tlbench.training.run import train


def read_scalars(run_dir):
    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    return set(acc.Tags()["scalars"])


def test_default_run_offline_end_to_end(tmp_path):
    """`python -m tlbench` as shipped: pretrained EfficientNet-Lite0, transfer, digits, > 0.85 val acc."""
    run_dir = tmp_path / "run"
    proc = run_cli(f"hydra.run.dir={run_dir}", "trainer.enable_progress_bar=false")
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = summary_file.read(run_dir)
    assert s.status == "ok" and s.error is None
    assert (s.model, s.strategy, s.data, s.seed) == (
        "efficientnet_lite0",
        "transfer",
        "digits",
        42,
    )
    assert s.best_val_acc > 0.85 and 0.0 <= s.final_val_acc <= s.best_val_acc <= 1.0
    assert s.test_acc > 0.8
    assert s.trainable_params == 12_810 and s.total_params > 3_000_000
    assert s.epochs == 10 and s.fit_seconds > 0 and s.train_images_per_second > 0
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert (run_dir / "checkpoints" / "best.ckpt").is_file() and (
        run_dir / "checkpoints" / "last.ckpt"
    ).is_file()
    assert {
        "train/loss",
        "train/acc",
        "val/loss",
        "val/acc",
        "test/acc",
    } <= read_scalars(run_dir)
    assert (
        len((run_dir / "metrics.csv").read_text().splitlines()) == 11
    )  # header + one row per epoch
    assert "tensorboard --logdir" in proc.stdout and "val acc best" in proc.stdout
    # Lightning's advert and a deprecation inside Lightning: nothing a user can act on
    assert "litlogger" not in proc.stdout + proc.stderr and "LeafSpec" not in proc.stderr


def test_multirun_runs_each_strategy_into_numbered_dirs(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(
        "--multirun",
        "strategy=transfer,finetune,scratch",
        f"hydra.sweep.dir={sweep}",
        "data.samples_per_class=5",
        "data.image_size=32",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "test_after_fit=false",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    strategies = [summary_file.read(sweep / str(i)).strategy for i in range(3)]
    assert strategies == ["transfer", "finetune", "scratch"]
    assert all(summary_file.read(sweep / str(i)).status == "ok" for i in range(3))


@pytest.mark.slow  # 10-40 s of subprocesses; make test-full runs it
def test_a_failing_job_does_not_stop_the_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(
        "--multirun",
        "optimizer.lr=-1,0.01",
        f"hydra.sweep.dir={sweep}",
        "data.samples_per_class=5",
        "data.image_size=32",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "test_after_fit=false",
        "logger=none",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    failed, ok = summary_file.read(sweep / "0"), summary_file.read(sweep / "1")
    assert failed.status == "failed" and "optimizer.lr=-1" in failed.error
    assert ok.status == "ok"


def test_missing_pretrained_weights_fail_before_training_with_a_clear_message(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli(
        "model=vgg16",
        "strategy=transfer",
        f"hydra.run.dir={run_dir}",
        env={"TORCH_HOME": str(tmp_path / "empty_torch_home")},
    )
    assert proc.returncode == 2
    assert "vgg16-397923af.pth" in proc.stderr and "strategy=scratch" in proc.stderr
    assert "Traceback" not in proc.stderr
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["status"] == "failed" and "vgg16-397923af.pth" in s["error"] and s["epochs"] is None


def test_train_is_importable_and_returns_the_summary(cfg_factory, tmp_path):
    s = train(cfg_factory("strategy=scratch", "model=resnet18"))
    assert s.status == "ok" and s.strategy == "scratch" and s.model == "resnet18"
    assert s.to_dict() == summary_file.read(tmp_path / "run").to_dict()  # what it wrote
    assert s.trainable_params == s.total_params
