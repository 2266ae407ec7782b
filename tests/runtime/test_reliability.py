"""Reliability: a catalogue of bad inputs (configs, data folders, checkpoints, interruptions),
resume after SIGKILL, clean SIGINT/SIGTERM, non-finite losses, skip_completed, safe loading, DDP.

Every bad input asserts the message (key, value, what is allowed / the fix), the exit code where
a process is involved, and that nothing already written was lost. Most checks call
`validation.validate_config` / `train(cfg)` in-process; a few run `python -m tlbench` to check exit
codes and the absence of tracebacks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers.cli import run_cli
from tests.helpers.configs import train_groups
from tlbench import summary_file
from tlbench.config import REPO_ROOT
from tlbench.config.instantiate import instantiate
from tlbench.config.validation import validate_config
from tlbench.errors import TlbenchError
from tlbench.inference import checkpoint as ckpt_mod
from tlbench.models import checkpoint_source
from tlbench.summary_file import RunSummary
from tlbench.training.run import train

FAST = ["model=lenet5", "strategy=scratch"]  # 62 k parameters: a step takes milliseconds
CLI_FAST = [
    *FAST,
    "data.image_size=32",
    "data.samples_per_class=8",
    "data.batch_size=16",
    "trainer.enable_progress_bar=false",
    "logger=none",
    "test_after_fit=false",
]


def bad(cfg_factory, *overrides) -> str:
    """The message validate_config raises for this config."""
    with pytest.raises(TlbenchError) as err:
        validate_config(cfg_factory(*FAST, *overrides))
    return str(err.value)


# -- 1-20: configs, checked before anything is read or built -------------------------------------
@pytest.mark.parametrize(
    "overrides, words",
    [
        (["+foo=1"], ["foo=1", "unknown config key", "Allowed:", "seed"]),
        (["+data.sample_per_class=5"], ["data.sample_per_class=5", "samples_per_class"]),
        (["+strategy.trainables=[head]"], ["unknown strategy key", "trainables"]),
        (["+trainer.max_epoch=3"], ["trainer.max_epoch=3", "max_epochs"]),
        (["+optimizer.momentom=0.9"], ["optimizer.momentom", "unknown config key"]),
        (["+model.wieghts=x"], ["model.wieghts", "weights"]),
        (["optimizer.lr=0"], ["optimizer.lr=0", "positive", "1e-3"]),
        (["optimizer.lr=-0.1"], ["optimizer.lr=-0.1", "positive"]),
        (["optimizer.lr=abc"], ["optimizer.lr='abc'", "positive"]),
        (["data.samples_per_class=0"], ["data.samples_per_class=0", "integer >= 1"]),
        (["data.samples_per_class=-3"], ["data.samples_per_class=-3"]),
        (
            ["data.samples_per_class=null", "data.train_fraction=1.5"],
            ["data.train_fraction=1.5", "(0, 1]"],
        ),
        (
            ["data.samples_per_class=null", "data.train_fraction=0"],
            ["data.train_fraction=0", "(0, 1]"],
        ),
        (["data.classes=[0,1,eleven]"], ["data.classes='eleven'", "unknown class name", "'1'"]),
        (["data.batch_size=0"], ["data.batch_size=0", "integer >= 1"]),
        (["data.image_size=big"], ["data.image_size='big'", "int"]),
        (["data.image_size=0"], ["data.image_size=0", "pixels"]),
        (["trainer.max_epochs=0"], ["trainer.max_epochs=0", "integer >= 1"]),
        (
            ["trainer.log_every_n_steps=often"],
            ["trainer.log_every_n_steps='often'", "wrong type", "int"],
        ),
        (["trainer.deterministic=maybe"], ["trainer.deterministic='maybe'", "wrong type"]),
        (["seed=one"], ["seed='one'", "integer"]),
        (["channels_last=sometimes"], ["channels_last='sometimes'", "auto, true, false"]),
        (["test_after_fit=perhaps"], ["test_after_fit='perhaps'", "true, false"]),
        (["data.val_fraction=1.2"], ["data.val_fraction=1.2", "(0, 1)"]),
        (["ckpt_path=/nonexistent/x.ckpt"], ["ckpt_path='/nonexistent/x.ckpt'", "no such file"]),
        (["resume=/nonexistent/run"], ["resume='/nonexistent/run'", "no such directory"]),
        (
            ["+trainer.strategy={_target_: os.system, command: 'echo pwned'}"],
            ["os.system", "allow-list"],
        ),
    ],
)
def test_bad_config_is_one_paragraph_naming_key_value_and_fix(cfg_factory, overrides, words):
    message = bad(cfg_factory, *overrides)
    assert "\n" not in message, message
    for w in words:
        assert w in message, (w, message)
    assert "Fix:" in message or "Allowed:" in message


def test_unknown_model_name_suggests_close_matches(cfg_factory):
    from tlbench.training.build import validate

    with pytest.raises(TlbenchError, match=r"resnet18") as err:
        validate(cfg_factory("model=lenet5", "model.name=resnet19", "model.source=torchvision"))
    assert "model='resnet19'" in str(err.value) and "did you mean" in str(err.value)


def test_missing_dataset_folder_fails_before_anything_is_read(cfg_factory, tmp_path):
    message = bad(cfg_factory, "data=imagefolder", f"data.root={tmp_path / 'nope'}")
    assert f"data.root='{tmp_path / 'nope'}'" in message and "does not exist" in message
    message = bad(cfg_factory, "data=cifar10", f"data.root={tmp_path / 'nope'}")
    assert "data.download=true" in message


def test_every_shipped_config_passes_validation(cfg_factory, tmp_path):
    """The checker never blocks a valid config: every group option with the default rest."""
    from tlbench.config import CONF_DIR

    root = tmp_path / "data"  # every dataset folder exists (empty: nothing is read)
    for f in (CONF_DIR / "data").glob("*.yaml"):
        (root / f.stem).mkdir(parents=True)
    (root / "cifar100").mkdir(exist_ok=True)
    for group in train_groups():
        for f in sorted((CONF_DIR / group).glob("*.yaml")):
            args = [*FAST, f"{group}={f.stem}", f"paths.data_dir={root}"]
            cfg = cfg_factory(*args, tiny=False)  # TINY's 1 epoch would cut lp_ft's schedule
            # A preset may name a system folder (Debian's Fashion-MNIST): the same config with
            # its data in tmp_path, so the check never depends on what this machine has.
            if "root" in cfg.data and not str(cfg.data.root).startswith(str(tmp_path)):
                (root / f"{f.stem}_root").mkdir(exist_ok=True)
                cfg = cfg_factory(*args, f"data.root={root / f'{f.stem}_root'}", tiny=False)
            validate_config(cfg)


def test_target_outside_the_allow_list_is_never_imported():
    with pytest.raises(TlbenchError, match="allow-list"):
        instantiate({"_target_": "os.system", "command": "echo pwned"}, "optimizer")
    nested = {
        "_target_": "torch.optim.SGD",
        "_partial_": True,
        "lr": 0.1,
        "x": {"_target_": "os.system"},
    }
    with pytest.raises(TlbenchError, match=r"optimizer\.x\._target_='os.system'"):
        instantiate(nested, "optimizer")


# -- Hydra's own errors and the CLI (exit code 2, no traceback) ---------------------------------
@pytest.mark.parametrize(
    "args, words",
    [
        (["model=resnet19"], ["model='resnet19'", "resnet18"]),
        (
            ["data.sample_per_class=5"],
            ["data.sample_per_class", "unknown config key", "'samples_per_class'"],
        ),
        (["optimizer.lr=0", *CLI_FAST], ["optimizer.lr=0", "positive"]),
    ],
)
def test_cli_errors_exit_2_without_traceback(tmp_path, args, words):
    run_dir = tmp_path / "run"
    proc = run_cli(*args, f"hydra.run.dir={run_dir}", env={"HYDRA_FULL_ERROR": "0"})
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    for w in words:
        assert w in proc.stderr, (w, proc.stderr[-2000:])


# -- checkpoints and weight files ----------------------------------------------------------------
class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_checkpoint_needing_arbitrary_unpickling_is_refused(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": _Evil()}, path)
    before = path.read_bytes()
    with pytest.raises(TlbenchError, match="arbitrary unpickling"):
        checkpoint_source.read(path)
    with pytest.raises(TlbenchError, match="refused as unsafe") as err:
        ckpt_mod.load(path)
    assert "weights_only=True" in str(err.value) and "weights_only=False" not in str(err.value)
    assert path.read_bytes() == before  # nothing touched


def test_truncated_and_garbage_checkpoints_are_clear_errors(tmp_path):
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(TlbenchError, match="garbage.ckpt"):
        ckpt_mod.load(garbage)
    empty_run = tmp_path / "run"
    empty_run.mkdir()
    with pytest.raises(TlbenchError, match="no checkpoints/best.ckpt"):
        ckpt_mod.load(empty_run)


def test_no_unsafe_torch_load_in_the_code():
    """Every torch.load / load_from_checkpoint / fit / test with a checkpoint says weights_only=True."""
    offenders = []
    for path in (REPO_ROOT / "tlbench").rglob("*.py"):
        text = path.read_text()
        for call in ("torch.load(", "load_from_checkpoint(", "torch.hub.load_state_dict_from_url("):
            start = 0
            while (i := text.find(call, start)) >= 0:
                start = i + 1
                snippet = text[i : i + 300]
                if "weights_only=True" not in snippet:
                    offenders.append(f"{path.name}: {snippet[:80]}")
    assert not offenders, offenders


# -- runs: non-finite loss, skip_completed -----------------------------------------------------
def test_non_finite_loss_stops_the_run_with_step_and_lr(cfg_factory):
    cfg = cfg_factory(*FAST, "optimizer.lr=1e12", "optimizer=sgd", "test_after_fit=false")
    with pytest.raises(TlbenchError) as err:
        train(cfg)
    message = str(err.value)
    assert "the training loss became" in message and "at step" in message
    assert "lr" in message.lower() and "1e+12" in message
    assert "no epoch had finished" in message and "last good epoch" not in message  # no ckpt yet
    s = summary_file.read(cfg.paths.output_dir)
    assert s.status == "failed" and "training loss became" in s.error


def test_skip_completed_keeps_a_finished_run_untouched(cfg_factory):
    cfg = cfg_factory(*FAST, "test_after_fit=false")
    first = train(cfg)
    assert first.status == "ok"
    path = Path(cfg.paths.output_dir) / "summary.json"
    before, mtime = path.read_text(), path.stat().st_mtime_ns
    again = train(cfg_factory(*FAST, "test_after_fit=false", "skip_completed=true"))
    assert again.status == "ok" and again.fit_seconds == first.fit_seconds  # the earlier run's
    assert path.read_text() == before and path.stat().st_mtime_ns == mtime


def test_a_failed_run_never_deletes_what_a_dir_already_holds(cfg_factory):
    cfg = cfg_factory(*FAST)
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True)
    keep = run_dir / "notes.txt"
    keep.write_text("mine")
    with pytest.raises(TlbenchError):
        train(cfg_factory(*FAST, "optimizer.lr=-1"))
    assert keep.read_text() == "mine"
    assert summary_file.read(run_dir).status == "failed"


def test_cli_refuses_to_overwrite_a_completed_run_dir(tmp_path):
    run_dir = tmp_path / "done"
    (run_dir / ".hydra").mkdir(parents=True)
    summary_file.write(run_dir, RunSummary(status="ok", model="x"))
    (run_dir / ".hydra" / "config.yaml").write_text("original\n")
    proc = run_cli(*CLI_FAST, f"hydra.run.dir={run_dir}")
    assert proc.returncode == 2 and "already holds a completed run" in proc.stderr
    assert (run_dir / ".hydra" / "config.yaml").read_text() == "original\n"
    assert summary_file.read(run_dir) == RunSummary(status="ok", model="x")


# -- interruption and resume (subprocesses) ------------------------------------------------------
def _start(run_dir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tlbench", *CLI_FAST, f"hydra.run.dir={run_dir}", *extra],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    end = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() < end, f"{path} never appeared"
        time.sleep(0.1)


@pytest.mark.parametrize(
    "sig, code",
    [(signal.SIGINT, 130), pytest.param(signal.SIGTERM, 143, marks=pytest.mark.slow)],
)
def test_signal_saves_a_checkpoint_and_marks_the_run_interrupted(tmp_path, sig, code):
    run_dir = tmp_path / "run"
    # 400 training images in batches of 16: epochs long enough to be interrupted inside one
    proc = _start(run_dir, "data.samples_per_class=40", "trainer.max_epochs=50")
    _wait_for(run_dir / "checkpoints" / "last.ckpt", proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-3000:]
    assert "Traceback" not in err and "resume=" in err
    s = summary_file.read(run_dir)
    assert s.status == "interrupted" and signal.Signals(sig).name in s.error
    assert s.epochs >= 1 and s.best_val_acc is not None
    # the interrupt callback's findings, merged into summary.json by the run (its one writer)
    assert s.interrupted_checkpoint.endswith("interrupted.ckpt")
    assert s.interrupted_at["epoch"] >= 1
    loaded = ckpt_mod.load(run_dir / "checkpoints" / "interrupted.ckpt")  # weights_only=True
    assert loaded.num_classes == 10
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()


def _last_epoch(run_dir: Path) -> int:
    try:
        state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    except (OSError, RuntimeError, EOFError):
        return -1
    return int(state["epoch"])


@pytest.mark.slow
def test_resume_after_sigkill_ends_like_an_uninterrupted_run(tmp_path):
    run_dir = tmp_path / "run"
    common = [
        "data.samples_per_class=24",
        "trainer.max_epochs=4",
        "logger=tensorboard",
        "trainer.log_every_n_steps=1",
    ]
    proc = _start(run_dir, *common)
    end = time.time() + 240
    while _last_epoch(run_dir) < 1:  # last.ckpt is replaced atomically: never half a file
        assert proc.poll() is None and time.time() < end, proc.communicate()[1][-3000:]
        time.sleep(0.05)
    proc.kill()  # SIGKILL right after epoch 1 (or 2) was checkpointed: no handler runs
    proc.communicate()
    restored = _last_epoch(run_dir)
    assert restored >= 1 and summary_file.read(run_dir).status == "running"
    assert len((run_dir / "metrics.csv").read_text().splitlines()) - 1 >= restored + 1
    done = run_cli(f"resume={run_dir}")
    assert done.returncode == 0, done.stderr[-3000:]
    s = summary_file.read(run_dir)
    assert s.status == "ok" and s.epochs == 4 and s.resumed_from.endswith("last.ckpt")
    assert s.segments[-1]["epochs"] == 4 - (restored + 1)  # at most the epoch in progress lost
    assert _last_epoch(run_dir) == 3 and s.last_checkpoint.endswith("last.ckpt")
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1", "2", "3"]
    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    for tag in ("val/acc", "train/loss"):  # x = epoch: one point each, none twice or missing
        assert [e.step for e in acc.Scalars(tag)] == [0, 1, 2, 3], tag
    # resuming a completed run without more epochs changes nothing
    before = (run_dir / "summary.json").read_text()
    again = run_cli(f"resume={run_dir}")
    assert again.returncode == 0 and "nothing to resume" in again.stdout
    assert (run_dir / "summary.json").read_text() == before


# -- run dirs are never poisoned or mixed (issue 15 item 3): exit 2, nothing on disk changed --------
def _tree(path: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _unfinished_run(tmp_path: Path) -> Path:
    run_dir = tmp_path / "run dir"  # a space: the hints must be shell-quoted
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text("- model=lenet5\n- strategy=scratch\n")
    summary_file.write(run_dir, RunSummary(status="interrupted", overrides=["model=lenet5"]))
    return run_dir


@pytest.mark.parametrize(
    "args, words",
    [
        (["resume={run}", "model=mini_vgg"], ["change the experiment", "model.name", "mini_vgg"]),
        (["hydra.run.dir={run}", *CLI_FAST], ["unfinished run", "interrupted", "overwrite=true"]),
        (["resume={run}", "overwrite=true"], ["exclude each other"]),
        (
            ["hydra.run.dir={run}/summary.json/x", *CLI_FAST],
            ["cannot be written", "not a directory"],
        ),
    ],
    ids=["resume-other-model", "unfinished-dir", "resume-and-overwrite", "output-below-a-file"],
)
def test_run_dir_guards_exit_2_and_change_nothing(tmp_path, args, words):
    run_dir = _unfinished_run(tmp_path)
    before = _tree(run_dir)
    proc = run_cli(*[a.format(run=run_dir) for a in args])
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    for w in words:
        assert w in proc.stderr, (w, proc.stderr[-2000:])
    assert _tree(run_dir) == before


@pytest.mark.slow
def test_sweep_with_skip_completed_runs_only_unfinished_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    args = [
        "--multirun",
        "seed=1,2",
        f"hydra.sweep.dir={sweep}",
        *CLI_FAST,
        "hydra.callbacks.report.enabled=false",
    ]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    (sweep / "1" / "summary.json").unlink()  # job 1 "was killed"
    kept = (sweep / "0" / "summary.json").read_text()
    refused = run_cli(*args)  # without skip_completed nothing is overwritten
    assert refused.returncode == 2 and "skip_completed=true" in refused.stderr
    second = run_cli(*args, "skip_completed=true")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "skipped" in second.stdout
    assert (sweep / "0" / "summary.json").read_text() == kept
    assert summary_file.read(sweep / "1").status == "ok"


@pytest.mark.slow
def test_ddp_on_cpu_two_ranks_one_set_of_outputs(tmp_path):
    runs = tmp_path / "runs"
    run_dir = runs / "ddp"
    proc = run_cli(
        "trainer=ddp_cpu",
        "experiment=smoke",
        *FAST,
        f"hydra.run.dir={run_dir}",
        "trainer.enable_progress_bar=false",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "MEMBER: 2/2" in out and "distributed_backend=gloo" in out
    assert sorted(p.name for p in runs.iterdir()) == ["ddp"]  # no second run dir
    s = summary_file.read(run_dir)
    assert s.status == "ok" and s.epochs == 2 and 0 <= s.best_val_acc <= 1
    pids = {p.name.split(".")[4] for p in (run_dir / "tensorboard").glob("events.out.tfevents.*")}
    assert len(pids) == 1  # every event file written by one process (rank 0)
    assert len((run_dir / "metrics.csv").read_text().splitlines()) == 3
    assert not list(run_dir.glob("**/.hydra/.hydra"))
