"""Run-dir guards before Hydra writes anything: unfinished/completed dirs, overwrite=true, the lock,
read-only dirs, resume= overrides that would change the experiment, and small messages (issue 15).
No training here: the dirs are built by hand; each check asserts the message and that nothing on
disk changed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tlbench import summary_file
from tlbench.errors import TlbenchError
from tlbench.runtime import launch, owned, rundir, signals
from tlbench.summary_file import RunSummary
from tlbench.training import summary as run_summary


def _run_dir(path: Path, status: str | None, overrides=("model=lenet5", "strategy=scratch")):
    (path / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(list(overrides)), path / ".hydra" / "overrides.yaml")
    if status:
        summary_file.write(path, RunSummary(status=status, epochs=2, overrides=list(overrides)))
    return path


def _snapshot(path: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(autouse=True)
def _release_locks():
    """check_targets takes the run dirs' locks for the launch (this test process)."""
    yield
    rundir.release_all()


@pytest.mark.parametrize("status", ["running", "interrupted", "failed"])
def test_an_unfinished_run_dir_is_refused_without_resume(tmp_path, status):
    run = _run_dir(tmp_path / "run", status)
    before = _snapshot(run)
    with pytest.raises(TlbenchError) as err:
        launch.check_targets([f"hydra.run.dir={run}"], [[]])
    message = str(err.value)
    assert "unfinished run" in message and status in message and "resume=" in message
    assert "overwrite=true" in message and "\n" not in message
    assert _snapshot(run) == before


def test_overwrite_true_clears_the_dir_first(tmp_path):
    run = _run_dir(tmp_path / "run", "interrupted")
    launch.check_targets([f"hydra.run.dir={run}", "overwrite=true"], [[]])
    # nothing of the old run is left; the launch holds the lock and has claimed the dir
    assert sorted(p.name for p in run.iterdir()) == [rundir.LOCK, owned.MANIFEST]


def test_resume_and_overwrite_exclude_each_other(tmp_path):
    run = _run_dir(tmp_path / "run", "interrupted")
    with pytest.raises(TlbenchError, match="exclude each other"):
        launch.rewrite_argv([f"resume={run}", "overwrite=true"])


def test_a_sweep_job_dir_that_was_interrupted_is_continued_with_skip_completed(tmp_path):
    sweep = tmp_path / "sweep"
    _run_dir(sweep / "1", "interrupted", ["seed=2"])  # job 0 never started
    argv = ["-m", f"hydra.sweep.dir={sweep}", "seed=1,2"]
    with pytest.raises(TlbenchError, match="job 1 of this sweep holds an unfinished run"):
        launch.check_targets(argv, [["seed=1"], ["seed=2"]])
    _run_dir(sweep / "0", "ok", ["seed=1"])
    with pytest.raises(TlbenchError, match="already holds completed jobs"):
        launch.check_targets(argv, [["seed=1"], ["seed=2"]])
    launch.check_targets([*argv, "skip_completed=true"], [["seed=1"], ["seed=2"]])  # allowed


def test_a_live_lock_keeps_a_second_process_out_and_a_stale_one_is_taken_over(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    # a live process whose command line mentions tlbench holds the lock
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "tlbench"])
    try:
        (run / rundir.LOCK).write_text(f'{{"pid": {live.pid}, "host": "{os.uname().nodename}"}}')
        with pytest.raises(TlbenchError) as err:
            launch.check_targets([f"hydra.run.dir={run}"], [[]])
        assert f"pid {live.pid}" in str(err.value) and "right now" in str(err.value)
        with pytest.raises(TlbenchError, match="right now"):
            rundir.Lock(run).acquire()
    finally:
        live.kill()
        live.wait()
    # the same pid, now dead: stale, taken over and released
    lock = rundir.Lock(run).acquire()
    assert f'"pid": {os.getpid()}' in (run / rundir.LOCK).read_text()
    lock.release()
    assert not (run / rundir.LOCK).exists()


def test_a_read_only_output_dir_is_one_paragraph(tmp_path, monkeypatch):
    blocked = tmp_path / "ro"
    blocked.mkdir()
    real = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if Path(p) == blocked else real(p, mode)
    )
    with pytest.raises(TlbenchError) as err:
        launch.check_targets([f"hydra.run.dir={blocked / 'run'}"], [[]])
    message = str(err.value)
    assert "cannot be written" in message and "read-only" in message and "Fix:" in message
    assert not (blocked / "run").exists()


def test_an_output_dir_below_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(TlbenchError, match="not a directory"):
        launch.check_targets([f"hydra.run.dir={tmp_path / 'file' / 'run'}"], [[]])


def test_resume_with_another_model_is_refused_before_anything_is_written(tmp_path):
    run = _run_dir(tmp_path / "run", "interrupted")
    before = _snapshot(run)
    with pytest.raises(TlbenchError) as err:
        launch.rewrite_argv([f"resume={run}", "model=mini_vgg"])
    message = str(err.value)
    assert "change the experiment" in message and "model.name" in message
    assert "lenet5" in message and "mini_vgg" in message and "\n" not in message
    assert _snapshot(run) == before  # .hydra/overrides.yaml untouched: resume= still works
    argv = launch.rewrite_argv([f"resume={run}", "trainer.max_epochs=7"])
    assert "model=lenet5" in argv and argv.index("trainer.max_epochs=7") > argv.index(
        "model=lenet5"
    )


def test_a_completed_run_is_extended_only_with_more_epochs(tmp_path, capsys):
    run = _run_dir(tmp_path / "run", "ok")  # 2 epochs done
    with pytest.raises(SystemExit) as done:
        launch.rewrite_argv([f"resume={run}", "trainer.max_epochs=2"])
    assert done.value.code == 0 and "nothing to resume" in capsys.readouterr().out
    argv = launch.rewrite_argv([f"resume={run}", "trainer.max_epochs=5"])
    assert argv[-1] == f"hydra.run.dir={run.resolve()}" and "trainer.max_epochs=5" in argv


def test_the_interrupt_hint_is_shell_quoted_and_honest_without_a_checkpoint(tmp_path):
    run = tmp_path / "my runs" / "a"
    (run / "checkpoints").mkdir(parents=True)
    exc = signals.Interrupted(2)
    text = signals.describe(exc, run)
    assert f"'resume={run}'" in text and "from scratch" in text  # no last.ckpt yet
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert "the end of the last finished epoch" in signals.describe(exc, run)


def test_segment_times_add_up():
    s = RunSummary(
        segments=[{"fit_seconds": 10.0, "epochs": 2, "images": 200, "train_seconds": 8.0}]
    )
    run_summary.add_segment(s, fit_seconds=5.0, epochs=1, images=100, train_seconds=2.0)
    assert s.fit_seconds == 15.0 and len(s.segments) == 2
    assert s.train_images_per_second == 30.0  # 300 images / 10 s of training
    assert sum(seg["epochs"] for seg in s.segments) == 3


def test_a_frozen_random_backbone_is_named(cfg_factory):
    warning = run_summary.random_backbone(cfg_factory("model=lenet5", "strategy=transfer"), 10, 100)
    assert "no pretrained weights" in warning and "lenet5" in warning
    assert (
        run_summary.random_backbone(cfg_factory("model=lenet5", "strategy=scratch"), 10, 10) is None
    )


def test_finetuning_a_model_without_weights_says_it_is_scratch(cfg_factory):
    """finetune with model.weights=null trains every layer from random: scratch by another name,
    which the report would compare as finetune."""
    cfg = cfg_factory("model=lenet5", "strategy=finetune")
    warning = run_summary.random_backbone(cfg, 100, 100)
    assert "strategy=finetune starts from pretrained weights" in warning
    assert "as strategy=scratch does" in warning and "model.weights=" in warning
    with_weights = cfg_factory("model=lenet5", "strategy=finetune", "model.weights=/x.ckpt")
    assert run_summary.random_backbone(with_weights, 100, 100) is None


def test_a_sweep_job_with_checkpoints_but_no_summary_counts_as_unfinished(tmp_path):
    sweep = tmp_path / "sweep"
    (sweep / "0" / "checkpoints").mkdir(parents=True)
    (sweep / "0" / ".hydra").mkdir()  # Hydra writes it before the job starts
    (sweep / "0" / "checkpoints" / "last.ckpt").write_bytes(b"x")
    argv = ["-m", f"hydra.sweep.dir={sweep}", "seed=1"]
    with pytest.raises(TlbenchError, match="unfinished run"):
        launch.check_targets(argv, [["seed=1"]])
    launch.check_targets([*argv, "skip_completed=true"], [["seed=1"]])  # continued in the job
