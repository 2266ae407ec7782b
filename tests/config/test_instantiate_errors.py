"""Bugs look like bugs (tlbench.config.instantiate, tlbench.cli): only what tlbench knows to be a
config mistake -- an argument that does not bind to the constructor, a `_target_` that does not
exist or is not allowed -- becomes a one-paragraph TlbenchError (exit 2). Anything a constructor
raises keeps its type, message and traceback (terminal and summary.json, exit 1), and a library's
own hint is shown as the library wrote it.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import textwrap

import pytest

from tests.helpers.cli import TINY, run_cli
from tlbench.config import REPO_ROOT
from tlbench.config.instantiate import instantiate
from tlbench.data.digits import DigitsDataModule
from tlbench.errors import TlbenchError
from tlbench.training.run import train

# The broken constructor is an allowed class with its __init__ replaced in the process, so the
# allow-list applies unchanged (no test class has to be allowed).
BROKEN = """
import functools, sys
from tlbench.data.digits import DigitsDataModule

@functools.wraps(DigitsDataModule.__init__)
def broken_init(self, *args, **kwargs):
    return 1 / 0

DigitsDataModule.__init__ = broken_init
from tlbench.cli import train_main
sys.argv = ["tlbench", *sys.argv[1:]]
train_main()
"""


def test_a_library_error_keeps_its_type_and_hint(monkeypatch):
    """Lightning's own SLURM error, raised while building, with its HINT and no invented advice."""
    monkeypatch.setenv("SLURM_NTASKS", "2")
    monkeypatch.delenv("SLURM_NTASKS_PER_NODE", raising=False)
    node = {"_target_": "lightning.pytorch.plugins.environments.SLURMEnvironment"}
    with pytest.raises(RuntimeError, match=r"HINT: Use `--ntasks-per-node=2`") as err:
        instantiate(node, "trainer.plugins")
    assert not isinstance(err.value, TlbenchError)


def test_a_value_the_library_refuses_keeps_its_type():
    node = {"_target_": "torch.optim.SGD", "params": [], "lr": 0.1}  # empty parameter list
    with pytest.raises(ValueError, match="empty parameter list"):
        instantiate(node, "optimizer")


@pytest.mark.parametrize(
    "node, words",
    [
        ({"_target_": "torch.optim.SGD", "_partial_": True, "lrr": 0.1}, ["lrr", "signature"]),
        (
            {"_target_": "lightning.pytorch.loggers.TensorBoardLogger", "name": "x"},
            ["save_dir", "missing a required argument"],
        ),
        ({"_target_": "torch.optim.SGDD", "_partial_": True}, ["SGDD", "does not exist", "SGD"]),
    ],
)
def test_a_config_mistake_is_one_paragraph_before_anything_is_called(node, words):
    with pytest.raises(TlbenchError) as err:
        instantiate(node, "optimizer")
    message = str(err.value)
    assert "\n" not in message and "Fix:" in message
    for w in words:
        assert w in message, (w, message)


def test_a_broken_constructor_keeps_its_traceback_in_summary_json(cfg_factory, monkeypatch):
    @functools.wraps(DigitsDataModule.__init__)
    def broken_init(self, *args, **kwargs):
        return 1 / 0

    monkeypatch.setattr(DigitsDataModule, "__init__", broken_init)
    cfg = cfg_factory("model=lenet5", "strategy=scratch")
    with pytest.raises(ZeroDivisionError):
        train(cfg)
    saved = json.loads((REPO_ROOT / cfg.paths.output_dir / "summary.json").read_text())
    assert saved["status"] == "failed" and saved["error_type"] == "ZeroDivisionError"
    assert "in broken_init" in saved["traceback"] and "ZeroDivisionError" in saved["traceback"]


def test_cli_shows_a_bug_with_its_traceback_and_exit_1(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(BROKEN), *TINY, "model=lenet5"]
        + [f"hydra.run.dir={run_dir}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    err = proc.stderr
    assert "Traceback (most recent call last)" in err and "in broken_init" in err
    assert "Error: ZeroDivisionError: division by zero" in err
    assert "Fix:" not in err and "signature" not in err
    assert f"the traceback is also in {run_dir / 'summary.json'}" in err
    assert "ZeroDivisionError" in json.loads((run_dir / "summary.json").read_text())["traceback"]


def test_cli_wrong_keyword_is_one_paragraph_exit_2(tmp_path):
    proc = run_cli(*TINY, "model=lenet5", "+data.colour=red", f"hydra.run.dir={tmp_path / 'r'}")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "data.colour='red'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
