"""The `_target_` allow-list (tlbench.config.allow_list) holds on the object a target names, for
every `_target_` tlbench composes or reads back: the command line, `hydra.callbacks` (which Hydra
builds itself at startup), and the saved `.hydra/` files of a run dir given to `resume=`.

The attacks are real: a pickle whose payload creates a marker file when loaded (checked live in
the first test), handed to `torch.load` through each bypass of the old string-prefix check. Every
one must be refused with exit code 2 and leave no marker.
"""

from __future__ import annotations

import builtins
import pickle
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf, open_dict

from tests.helpers.cli import TINY, run_cli
from tlbench.config import REPO_ROOT, allow_list, compose, target_checks
from tlbench.config.instantiate import instantiate
from tlbench.errors import TlbenchError
from tlbench.runtime import launch

BYPASSES = [
    "torch.optim.optimizer.torch.load",  # starts with torch.optim., is torch.load
    "tlbench.atomic.os.system",  # starts with tlbench., is os.system
    "torch.load",
    "os.system",
    "builtins.exec",
    "tlbench.config.allow_list.importlib.import_module",
    "tlbench.training.run.train",  # a tlbench function: functions are never targets
    "torch.optim.Optimizer.load_state_dict",  # a method reached through an allowed class
    "${oc.env:EVIL}",  # an interpolation is no class name
]
SHIPPED_EXTRAS = [  # classes a config may reasonably name beyond conf/
    "torch.optim.lr_scheduler.ReduceLROnPlateau",
    "lightning.pytorch.callbacks.EarlyStopping",
    "lightning.pytorch.loggers.CSVLogger",
    "lightning.pytorch.strategies.DDPStrategy",
    "lightning.pytorch.plugins.environments.SLURMEnvironment",
    "timm.optim.Lamb",
    "timm.scheduler.CosineLRScheduler",
]


class Payload:
    """Unpickling runs `open(marker, 'w')` through builtins.exec."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.exec, (f"open({self.marker!r}, 'w').close()",))


@pytest.fixture
def evil(tmp_path):
    """(the malicious pickle, the marker its payload would create)."""
    path, marker = tmp_path / "evil.pkl", tmp_path / "marker"
    path.write_bytes(pickle.dumps(Payload(marker)))
    return path, marker


def test_the_payload_is_live(evil):
    path, marker = evil
    with pytest.raises(RuntimeError):  # torch complains about the result: the payload ran first
        torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("target", BYPASSES)
def test_a_target_is_judged_by_the_object_it_names(target):
    with pytest.raises(TlbenchError, match="allow-list") as err:
        allow_list.resolve(target, "callbacks.x")
    assert "callbacks.x._target_=" in str(err.value)


@pytest.mark.parametrize("target", SHIPPED_EXTRAS)
def test_allowed_classes_resolve(target):
    assert allow_list.kind_of(allow_list.resolve(target, "x")) is not None


def test_a_missing_target_is_named_with_close_matches():
    with pytest.raises(TlbenchError, match="does not exist") as err:
        allow_list.resolve("torch.optim.SGDD", "optimizer")
    assert "SGD" in str(err.value) and "allow-list" not in str(err.value)


@pytest.mark.parametrize(
    "config_name, overrides",
    [
        ("train", []),
        ("train", ["hydra/launcher=slurm"]),
        ("train", ["data=cifar10", "scheduler=cosine", "optimizer=adamw", "trainer=ddp_cpu"]),
        ("evaluate", []),
        ("predict", []),
        ("export", []),
        ("rank", []),
    ],
)
def test_every_target_of_the_shipped_configs_is_allowed(config_name, overrides):
    cfg = compose(overrides, config_name, return_hydra_config=True)
    allow_list.check_config(cfg)
    target_checks.check_logging(cfg)


@pytest.mark.parametrize(
    "job, hydra",
    [("default", "default"), ("disabled", "disabled"), ("none", "none"), ("stdout", "hydra_debug")],
)
def test_hydra_logging_options_pass(job, hydra):
    overrides = [f"hydra/job_logging={job}", f"hydra/hydra_logging={hydra}"]
    target_checks.check_logging(compose(overrides, return_hydra_config=True))


@pytest.mark.parametrize(
    "entry",
    [
        "+hydra.job_logging.handlers.x={class: os.system, command: 'touch m'}",
        "+hydra.hydra_logging.handlers.x={class: logging.StreamHandler, stream: 'ext://os.sep'}",
        "hydra.job_logging.handlers.console.class=${oc.env:EVIL}",
    ],
)
def test_hydra_logging_may_name_only_logging_classes(entry):
    with pytest.raises(TlbenchError, match="logging config"):
        target_checks.check_command_line([entry])


def test_a_logging_factory_is_refused():
    """`()` (a factory dictConfig calls) cannot be typed as an override, but a config file can
    hold one."""
    cfg = compose([], return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.job_logging.formatters.x = {"()": "builtins.exec", "source": "x"}
    with pytest.raises(TlbenchError, match=r"formatters\.x\.\(\)='builtins.exec'"):
        target_checks.check_logging(cfg)


def test_a_node_made_by_an_interpolation_is_checked_once_resolved():
    node = {
        "_target_": "torch.optim.SGD",
        "_partial_": True,
        "lr": 0.1,
        "x": "${oc.create:'{_target_: torch.load, f: x}'}",
    }
    with pytest.raises(TlbenchError, match=r"optimizer\.x\._target_='torch.load'"):
        instantiate(node, "optimizer")


def test_hydra_callbacks_are_checked_resolved():
    cfg = compose([], return_hydra_config=True)
    with open_dict(cfg):  # what Hydra would turn into a node when it builds its callbacks
        cfg.hydra.callbacks.x = "${oc.create:'{_target_: torch.load}'}"
    with pytest.raises(TlbenchError, match=r"hydra\.callbacks\.x\._target_='torch.load'"):
        allow_list.check_config(cfg)


def test_a_sweep_over_targets_is_checked_value_by_value():
    with pytest.raises(TlbenchError, match="torch.load"):
        target_checks.check_command_line(["-m", "optimizer._target_=torch.optim.SGD,torch.load"])


def test_hydra_experimental_rerun_is_refused(evil):
    path, marker = evil
    with pytest.raises(TlbenchError, match="unpickles"):
        target_checks.check_command_line([f"--experimental-rerun={path}"])
    assert not marker.exists()


# -- the command line, as a user (or a script someone shared) types it ---------------------------
def _planted(key: str, target: str, evil) -> list[str]:
    path, _ = evil
    return [f"+{key}._target_={target}", f"+{key}.f={path}", f"+{key}.weights_only=false"]


@pytest.mark.parametrize(
    "key, target, env",
    [
        ("callbacks.x", "torch.optim.optimizer.torch.load", {}),
        pytest.param("callbacks.x", "tlbench.atomic.os.system", {}, marks=pytest.mark.slow),
        ("hydra.callbacks.x", "torch.load", {}),
        pytest.param(  # preflight is skipped: the allow-list is not
            "hydra.callbacks.x", "torch.load", {"HYDRA_FULL_ERROR": "1"}, marks=pytest.mark.slow
        ),
    ],
)
def test_cli_bypasses_are_refused_and_run_nothing(tmp_path, evil, key, target, env):
    run_dir = tmp_path / "run"
    args = _planted(key, target, evil)
    if "os.system" in target:
        args = [f"+{key}._target_={target}", f"+{key}.command=touch {evil[1]}"]
    proc = run_cli(*TINY, "model=lenet5", f"hydra.run.dir={run_dir}", *args, env=env)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "allow-list" in proc.stderr and f"{key}._target_=" in proc.stderr
    assert not evil[1].exists() and not run_dir.exists()


def test_other_entry_points_check_hydra_callbacks_too(tmp_path, evil):
    proc = subprocess_rank(tmp_path, _planted("hydra.callbacks.x", "torch.load", evil))
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "allow-list" in proc.stderr and not evil[1].exists()


def subprocess_rank(tmp_path, args):
    """`python -m tlbench.rank ...`: an entry point that goes through tlbench.cli.main."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tlbench.rank",
            "candidates=[lenet5]",
            f"hydra.run.dir={tmp_path / 'r'}",
            *args,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


# -- a run dir someone hands over: resume=<dir> -------------------------------------------------
def _run_dir(tmp_path, overrides=(), hydra_overrides=(), config=None, hydra=None):
    """A run dir as tlbench writes one (.hydra/overrides.yaml, hydra.yaml, config.yaml), with
    whatever is planted in it."""
    run_dir = tmp_path / "handed_over"
    (run_dir / ".hydra").mkdir(parents=True)
    task = [*TINY, "model=lenet5", *overrides]
    OmegaConf.save(OmegaConf.create(task), run_dir / ".hydra" / "overrides.yaml")
    saved = {"overrides": {"hydra": [f"hydra.run.dir={run_dir}", *hydra_overrides], "task": task}}
    saved.update(hydra or {})
    OmegaConf.save(OmegaConf.create({"hydra": saved}), run_dir / ".hydra" / "hydra.yaml")
    cfg = OmegaConf.to_container(compose(task), resolve=False)
    cfg.update(config or {})
    OmegaConf.save(OmegaConf.create(cfg), run_dir / ".hydra" / "config.yaml")
    return run_dir


@pytest.mark.parametrize(
    "where",
    ["overrides.yaml", "hydra.yaml overrides", "hydra.yaml callbacks", "config.yaml", "a flag"],
)
def test_a_planted_target_in_a_resumed_run_dir_is_refused(tmp_path, evil, where):
    path, marker = evil
    node = {"_target_": "torch.optim.optimizer.torch.load", "f": str(path), "weights_only": False}
    run_dir = _run_dir(
        tmp_path,
        overrides=_planted("callbacks.x", node["_target_"], evil)
        if where == "overrides.yaml"
        else (),
        hydra_overrides=_planted("hydra.callbacks.x", "torch.load", evil)
        if where == "hydra.yaml overrides"
        else [f"--experimental-rerun={path}"]
        if where == "a flag"
        else (),
        hydra={"callbacks": {"x": node}} if where == "hydra.yaml callbacks" else None,
        config={"callbacks": {"x": node}} if where == "config.yaml" else None,
    )
    with pytest.raises(TlbenchError, match="resuming it could run code") as err:
        launch.rewrite_argv([f"resume={run_dir}"])
    assert f".hydra/{where.split()[0] if where != 'a flag' else 'hydra.yaml'}" in str(err.value)
    assert not marker.exists()


def test_resume_of_a_dir_with_planted_hydra_callbacks_runs_nothing(tmp_path, evil):
    """The audit's case: the payload ran, then the run trained normally to exit 0."""
    run_dir = _run_dir(tmp_path, hydra_overrides=_planted("hydra.callbacks.x", "torch.load", evil))
    proc = run_cli(f"resume={run_dir}")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "hydra.yaml" in proc.stderr and "allow-list" in proc.stderr
    assert not evil[1].exists() and not (run_dir / "summary.json").exists()


def test_a_clean_handed_over_dir_still_passes_the_check(tmp_path):
    target_checks.check_run_dir(_run_dir(tmp_path))
