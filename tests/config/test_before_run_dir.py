"""Issue 22 items 3, 6, 8 and its low items: every check that does not need the images runs before
Hydra creates the run dir (one paragraph, exit 2, no dir left behind); a run that fails on its
data before training leaves a dir the corrected command may reuse; LR multipliers and learning
rates must be finite and positive; data.num_workers is capped at the usable CPUs and
data.batch_size at the largest split.

Most cases run `tlbench.config.preflight.preflight` in-process, exactly as `python -m tlbench`
calls it (fast); a few run the command itself for the exit code and the absent run dir.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.helpers.checkpoints import malicious, random_bytes, train_tiny
from tests.helpers.cli import TINY, run_cli
from tests.helpers.datasets import image_tree
from tlbench.config import preflight
from tlbench.data.loading import usable_cpus
from tlbench.errors import TlbenchError
from tlbench.training.build import validate as validate_run

FAST = ["model=lenet5", "strategy=scratch", *TINY]


def refused(tmp_path, *overrides: str) -> str:
    """The command line's preflight refuses it: one paragraph, and no run dir exists."""
    run = tmp_path / "run"
    argv = preflight.quote_dict_keys([*FAST, f"hydra.run.dir={run}", *overrides])
    with pytest.raises(TlbenchError) as err:
        preflight.preflight(argv, preflight.job_overrides(argv), then=validate_run)
    message = str(err.value)
    assert "\n" not in message and ("Fix:" in message or "Allowed:" in message), message
    assert not run.exists()
    return message


@pytest.mark.parametrize(
    "overrides, words",
    [
        # item 6: the model and its weights
        (["strategy=finetune", "model.weights=/nonexistent/w.pth"], ["does not exist"]),
        (["model.weights=DEFAULT"], ["lenet5 has no pretrained weights"]),
        (["model=resnet18", "model.weights=IMAGENET1K_V9"], ["IMAGENET1K_V1"]),
        (["~model.name"], ["model.name", "needs this key"]),
        (["data.image_size=1"], ["data.image_size=1", "at least 16"]),
        (["strategy.lr_mult={nomatch*: 0.5}"], ["strategy.lr_mult.nomatch*", "matches no"]),
        (["data.num_workers=-1"], ["data.num_workers=-1"]),
        # item 3: more workers than CPUs
        (["data.num_workers=1000"], ["data.num_workers=1000", "CPUs", f"0 .. {usable_cpus()}"]),
        # item 8: multipliers and learning rates
        (
            ["strategy.lr_mult={features.conv*: -1}"],
            ["strategy.lr_mult.features.conv*=-1", "cannot be negative", ">= 0"],
        ),
        (["strategy.lr_mult={features.conv*: nan}"], ["=nan", "finite"]),
        (["strategy.lr_mult={features.conv*: inf}"], ["=inf", "finite"]),
        (["strategy.head_lr_mult=0"], ["strategy.head_lr_mult=0", "> 0"]),
        (["strategy.backbone_lr_mult=-0.1"], ["strategy.backbone_lr_mult=-0.1", "> 0"]),
        (["strategy.backbone_lr_mult=inf"], ["strategy.backbone_lr_mult=inf", "not a finite"]),
        (["optimizer.lr=nan"], ["optimizer.lr=nan", "not a finite number"]),
        (["optimizer.lr=0"], ["optimizer.lr=0", "positive"]),
        (["optimizer.lr=-1e-3"], ["optimizer.lr=-0.001", "positive"]),
        (["optimizer.weight_decay=nan"], ["optimizer.weight_decay=nan", "not a finite number"]),
        # a misspelt key without +: Hydra's "Could not override" with the keys beside it
        (
            ["data.batchsize=8"],
            ["data.batchsize=8", "unknown config key", "Allowed:", "did you mean 'batch_size'"],
        ),
        (["qqq=1"], ["qqq=1", "Allowed:", "seed", "(see Allowed)"]),
        # a key below a node that does not exist: the keys of the deepest one that does
        (
            ["callbacks.early_stopping.patience=3"],
            ["patience=3: unknown config key", "Allowed: images, last_checkpoint, learning_rates"],
        ),
        # + on a key the config has: was "seed='1': unknown config key (did you mean 'seed'?)"
        (
            ["+seed=1"],
            ["+seed=1: this key is in the config already", "Fix: set it without the +: seed=1"],
        ),
        # low items: interpolations, callbacks watching a metric nobody logs
        (["optimizer.lr=${nonexistent.key}"], ["optimizer.lr=", "nonexistent.key", "resolve"]),
        (
            [
                "+callbacks.es._target_=lightning.pytorch.callbacks.EarlyStopping",
                "+callbacks.es.monitor=val/accuracy",
            ],
            ["callbacks.es.monitor='val/accuracy'", "val/acc"],
        ),
    ],
)
def test_refused_before_the_run_dir_exists(tmp_path, overrides, words):
    message = refused(tmp_path, *overrides)
    for w in words:
        assert w in message, (w, message)
    if any(o.endswith(("nan", "inf", "nan}", "inf}")) for o in overrides):
        problem = message.split(" Allowed:")[0]  # the audit: weight_decay=nan was "negative"
        assert "negative" not in problem and "not a finite number" in problem, problem


def test_unset_environment_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("TLBENCH_TEST_UNSET", raising=False)
    message = refused(tmp_path, "optimizer.lr=${oc.env:TLBENCH_TEST_UNSET}")
    assert "TLBENCH_TEST_UNSET" in message and "oc.env:NAME,0.001" in message


@pytest.mark.parametrize("kind", ["random", "unsafe"])
def test_bad_weights_file(tmp_path, kind):
    marker = tmp_path / "payload-ran"
    path = (
        random_bytes(tmp_path / "w.pth")
        if kind == "random"
        else malicious(tmp_path / "w.pth", marker)
    )
    message = refused(tmp_path, "strategy=finetune", f"model.weights={path}")
    assert "model.weights=" in message and ("unsafe" in message) == (kind == "unsafe")
    assert not marker.exists()


def test_imagefolder_class_that_is_not_a_folder(tmp_path):
    root = image_tree(tmp_path / "imgs", {"cat": 2, "dog": 2})
    message = refused(tmp_path, "data=imagefolder", f"data.root={root}", "data.classes=[cat,cow]")
    assert "data.classes='cow'" in message and "cat" in message and "dog" in message


@pytest.mark.slow
def test_monitors_cover_every_metric_a_run_logs(tmp_path):
    """The names check_monitors allows match what a real run logs (metrics.csv's columns)."""
    import fnmatch

    from tlbench.config.monitors import MONITORABLE

    train_tiny(tmp_path / "run")
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    for name in set(header) - {"epoch", "step"}:
        if name.startswith(("val/", "train/", "lr/", "time/")):
            assert any(fnmatch.fnmatchcase(name, m) for m in MONITORABLE), name


def test_cli_exit_2_and_no_run_dir(tmp_path):
    run = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    args = [*FAST, f"hydra.run.dir={run}", "strategy.lr_mult={features.conv*: -1}"]
    done = run_cli(*args, env=env)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "strategy.lr_mult.features.conv*=-1" in done.stderr
    assert "Traceback" not in done.stderr and not run.exists()


@pytest.mark.slow
def test_failed_on_its_data_leaves_a_reusable_dir(tmp_path):
    """An empty class folder is found only when the images are scanned: the run fails with
    `failed_before_training`, and the corrected command reuses the dir without overwrite=true."""
    root = image_tree(tmp_path / "imgs", {"cat": 4, "dog": 4, "cow": 0})
    (root / "cow").mkdir()
    run = tmp_path / "run"
    args = ["data=imagefolder", f"data.root={root}", f"hydra.run.dir={run}"]
    args += ["data.samples_per_class=null", "data.val_fraction=0.25", "data.test_fraction=0.25"]
    first = run_cli(*FAST, *args)
    assert first.returncode == 2, first.stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["failed_before_training"] is True
    for i in range(4):
        (root / "cow" / f"{i}.jpg").write_bytes((root / "cat" / f"{i}.jpg").read_bytes())
    second = run_cli(*FAST, *args)
    assert second.returncode == 0, second.stderr[-2000:]
    assert json.loads((run / "summary.json").read_text())["status"] == "ok"


def test_a_config_dir_of_ones_own_is_hydras(tmp_path):
    """`--config-dir <dir>` adds the user's configs: its value is no override (it was parsed as
    one and refused), and the presets it holds are used."""
    conf = tmp_path / "conf" / "model"
    conf.mkdir(parents=True)
    (conf / "my_lenet.yaml").write_text("name: lenet5\nsource: tlbench\nweights: null\n")
    run = tmp_path / "run"
    argv = ["--config-dir", str(tmp_path / "conf"), "model=my_lenet", f"hydra.run.dir={run}"]
    assert preflight.job_overrides(argv) is None  # left to Hydra, which reads that dir
    done = run_cli(*argv, *[o for o in FAST if not o.startswith("model=")])
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["model"] == "lenet5"


def test_batch_size_above_every_split_is_capped(caplog):
    from tlbench.data.digits import DigitsDataModule

    dm = DigitsDataModule(batch_size=1_000_000_000, samples_per_class=8, image_size=32)
    with caplog.at_level("WARNING", logger="tlbench"):
        dm.setup()
    largest = max(dm.sizes().values())
    assert dm.batch_size == largest and "data.batch_size=1000000000" in caplog.text
    assert len(next(iter(dm.train_dataloader()))[1]) == dm.sizes()["train"]


def test_rank_with_a_training_key_is_one_paragraph():
    done = run_cli("model=lenet5", module="tlbench.rank")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "model='lenet5'" in done.stderr and "tlbench.rank --cfg job" in done.stderr
    assert "Traceback" not in done.stderr and "HYDRA_FULL_ERROR" not in done.stderr


@pytest.mark.slow
def test_precision_64_trains_and_a_shorter_resume_is_refused(tmp_path):
    """trainer.precision=64-true (listed as allowed) trains: the uint8 batches transformed on the
    device are cast to the network's dtype. Then, with the run made unfinished as a kill after
    its 2 epochs would leave it, `resume=<dir> trainer.max_epochs=1` is refused before anything
    changes: the summary is not flipped to failed."""
    from tests.helpers.checkpoints import TINY_RUN

    run = tmp_path / "run"
    first = run_cli(
        *TINY_RUN, "trainer.precision=64-true", "trainer.max_epochs=2", f"hydra.run.dir={run}"
    )
    assert first.returncode == 0, first.stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["precision"] == "64-true"
    (run / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    before = (run / "summary.json").read_bytes()
    again = run_cli(f"resume={run}", "trainer.max_epochs=1")
    assert again.returncode == 2, again.stderr[-2000:]
    assert "trainer.max_epochs=1" in again.stderr and "2 trained epochs" in again.stderr
    assert (run / "summary.json").read_bytes() == before
