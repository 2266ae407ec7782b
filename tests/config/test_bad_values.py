"""Bad values caught before any data is read or anything is written (issue 15, item 4): each is one
paragraph naming the key and the value, what is allowed and the fix. Most cases call
`validate_config` directly (fast); a few run `python -m tlbench` to check exit code 2 and that no
run dir was created.
"""

from __future__ import annotations

import pytest
import torch

from tests.helpers.cli import run_cli
from tlbench.config.validation import validate_config
from tlbench.errors import TlbenchError

FAST = ["model=lenet5", "strategy=scratch"]


def bad(cfg_factory, *overrides, **kwargs) -> str:
    with pytest.raises(TlbenchError) as err:
        validate_config(cfg_factory(*FAST, *overrides), **kwargs)
    message = str(err.value)
    assert "\n" not in message, message
    assert "Allowed:" in message or "Fix:" in message, message
    return message


@pytest.mark.parametrize(
    "overrides, words",
    [
        (["trainer.precision=bf17"], ["trainer.precision='bf17'", "bf16-mixed", "did you mean"]),
        (["seed=-1"], ["seed=-1", "[0, 4294967295]"]),
        (["seed=1099511627776"], ["seed=1099511627776", "[0, 4294967295]"]),
        (["scheduler=step", "scheduler.step_size=0"], ["scheduler.step_size=0", ">= 1"]),
        (["scheduler=step", "scheduler.gamma=-0.1"], ["scheduler.gamma=-0.1", "> 0"]),
        (["data.classes=[3]"], ["data.classes=['3']", "at least 2"]),
        (["data.classes=[3,3]"], ["data.classes=['3', '3']", "at least 2 distinct"]),
        (["data.classes=3"], ["data.classes=3", "list"]),
        (["optimizer=sgd", "optimizer.momentum=2"], ["optimizer.momentum=2", "[0, 1)"]),
        (["optimizer=sgd", "optimizer.momentum=-0.5"], ["optimizer.momentum=-0.5", "[0, 1)"]),
        (["+optimizer.betas=[0.9,1.5]"], ["optimizer.betas=[0.9, 1.5]", "two numbers in [0, 1)"]),
        (["optimizer.weight_decay=-1"], ["optimizer.weight_decay=-1", ">= 0"]),
        (["+optimizer.eps=0"], ["optimizer.eps=0", "> 0"]),
        (["data.image_size=100000"], ["data.image_size=100000", "1 .. 4096", "GiB"]),
        (
            ["data.val_fraction=0.6", "data.test_fraction=0.6"],
            ["data.val_fraction=0.6", "sum to 1.2 > 1", "no images remain", "< 1"],
        ),
        (
            ["strategy.trainable=head"],
            ["strategy.trainable='head'", "takes a list", "strategy.trainable=[head]"],
        ),
        (["strategy.last_n_stages=two"], ["strategy.last_n_stages='two'", "int"]),
        (["strategy.pretrained=maybe"], ["strategy.pretrained='maybe'", "bool"]),
        (["overwrite=maybe"], ["overwrite='maybe'", "true, false"]),
    ],
)
def test_bad_value_is_one_paragraph(cfg_factory, overrides, words):
    message = bad(cfg_factory, *overrides)
    for w in words:
        assert w in message, (w, message)


def test_fraction_sum_message_has_no_float_noise(cfg_factory):
    message = bad(cfg_factory, "data.val_fraction=0.6", "data.test_fraction=0.6")
    assert "0.19999" not in message and "{'train'" not in message


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
@pytest.mark.parametrize("overrides", [["trainer=gpu"], ["trainer.accelerator=cuda"]])
def test_gpu_without_a_gpu_is_refused_on_this_machine_only(cfg_factory, overrides):
    message = bad(cfg_factory, *overrides, machine=True)
    assert "no CUDA GPU is visible" in message and "trainer.accelerator=" in message
    assert "signature" not in message and "trainer=cpu" in message
    validate_config(cfg_factory(*FAST, *overrides))  # the config itself is sound elsewhere


def test_data_root_that_is_a_file(cfg_factory, tmp_path):
    f = tmp_path / "images.zip"
    f.write_bytes(b"PK")
    message = bad(cfg_factory, "data=imagefolder", f"data.root={f}")
    assert f"data.root='{f}'" in message and "is a file, not a folder" in message


def test_train_and_val_dirs_without_a_root_are_accepted(cfg_factory, tmp_path):
    (tmp_path / "tr").mkdir()
    (tmp_path / "va").mkdir()
    validate_config(
        cfg_factory(
            *FAST,
            "data=imagefolder",
            f"data.root={tmp_path / 'absent'}",
            f"data.train_dir={tmp_path / 'tr'}",
            f"data.val_dir={tmp_path / 'va'}",
        )
    )
    message = bad(
        cfg_factory, "data=imagefolder", f"data.train_dir={tmp_path / 'tr'}", "data.val_dir=/nope"
    )
    assert "data.val_dir='/nope'" in message


def test_run_dir_inside_the_dataset_is_refused(cfg_factory, tmp_path):
    root = tmp_path / "flowers"
    root.mkdir()
    message = bad(cfg_factory, "data=imagefolder", f"data.root={root}", run_dir=root / "run")
    assert f"hydra.run.dir='{root / 'run'}'" in message and "inside the dataset" in message
    validate_config(
        cfg_factory(*FAST, "data=imagefolder", f"data.root={root}"), run_dir=tmp_path / "run"
    )


def test_cifar10_class_names_come_from_the_datamodule(cfg_factory, tmp_path):
    (tmp_path / "c10").mkdir()
    message = bad(
        cfg_factory, "data=cifar10", f"data.root={tmp_path / 'c10'}", "data.classes=[cat,dgo]"
    )
    assert "data.classes='dgo'" in message and "'dog'" in message


# -- through the real command line: exit 2, nothing written -------------------------------------
# Each run costs an interpreter start and a composition (~3 s on an idle core): a few
# representative cases; the rest are the same checks, called directly above.
@pytest.mark.parametrize(
    "overrides, words",
    [
        (["trainer.precision=bf17"], ["trainer.precision='bf17'"]),
        (["strategy.trainable=head"], ["strategy.trainable='head'", "[head]"]),
    ],
)
def test_cli_refuses_before_writing_anything(tmp_path, overrides, words):
    run_dir = tmp_path / "run"
    proc = run_cli(*FAST, *overrides, f"hydra.run.dir={run_dir}", timeout=300)
    assert proc.returncode == 2, proc.stderr
    for w in words:
        assert w in proc.stderr, (w, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert not run_dir.exists()


def test_cli_refuses_a_run_dir_inside_the_dataset(tmp_path):
    root = tmp_path / "flowers"
    (root / "a").mkdir(parents=True)
    before = sorted(p.name for p in root.rglob("*"))
    proc = run_cli(
        *FAST, "data=imagefolder", f"data.root={root}", f"hydra.run.dir={root / 'out'}", timeout=300
    )
    assert proc.returncode == 2, proc.stderr
    assert "hydra.run.dir=" in proc.stderr and "inside the dataset" in proc.stderr
    assert sorted(p.name for p in root.rglob("*")) == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_cli_refuses_trainer_gpu_without_a_gpu(tmp_path):
    proc = run_cli(*FAST, "trainer=gpu", f"hydra.run.dir={tmp_path / 'run'}", timeout=300)
    assert proc.returncode == 2 and "no CUDA GPU is visible" in proc.stderr, proc.stderr
    assert not (tmp_path / "run").exists()
