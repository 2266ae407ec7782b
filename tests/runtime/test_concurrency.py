"""Concurrent starts and the small run-dir gaps of issue 22 (item 5 and its low items): the lock
is taken before Hydra writes anything, so of two starts into one dir exactly one trains and the
other changes nothing; sweeps sharing a dir or mapping jobs to one dir are refused before any job
trains; skip_completed leaves a finished run's files alone; resume='' is an error; a stale
interrupted.ckpt goes after a successful resume. Real `python -m tlbench` processes, started
together, and the files on disk afterwards."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from omegaconf import OmegaConf, open_dict

from tests.helpers.cli import TINY, TWO_STEPS, run_cli
from tlbench import summary_file
from tlbench.config import compose
from tlbench.config.app import REPO_ROOT
from tlbench.config.preflight import sweep_jobs
from tlbench.errors import TlbenchError
from tlbench.runtime import launch, rundir
from tlbench.summary_file import RunSummary
from tlbench.training.run import train

FAST = [  # two steps per epoch, no test: the trained run is short
    *TINY,
    *TWO_STEPS,
    "test_after_fit=false",
]


@pytest.fixture(autouse=True)
def _release_locks():
    yield
    rundir.release_all()


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tlbench", *args],
        cwd=REPO_ROOT,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _together(*commands: list[str]) -> list[tuple[int, str, str]]:
    procs = [_start(*c) for c in commands]  # started at once, before either can take the lock
    outs = [p.communicate(timeout=600) for p in procs]
    return [(p.returncode, *out) for p, out in zip(procs, outs, strict=True)]


def _finished(results, late: str):
    """One process trained (exit 0); the other was refused while it did (exit 2, "right now"), or
    on a loaded machine started only after the first had finished and says `late` instead (texts
    separated by |)
    (resume: "nothing to resume", exit 0; a fresh run: "already holds a completed run", exit 2).
    Returns the index of the one that trained."""
    codes, errs = [r[0] for r in results], [r[1] + r[2] for r in results]
    losers = [i for i in (0, 1) if any(w in errs[i] for w in ("right now", *late.split("|")))]
    assert len(losers) == 1 and 0 in codes, [
        (c, e[-1500:]) for c, e in zip(codes, errs, strict=True)
    ]
    loser = errs[losers[0]]
    assert "Traceback" not in loser and codes[losers[0]] in (0, 2)
    assert "right now" not in loser or "nothing was changed" in loser
    assert codes[1 - losers[0]] == 0
    return 1 - losers[0]


@pytest.mark.slow  # two tlbench processes, one trains: ~40 s on a busy 2-core machine
def test_two_fresh_runs_into_one_dir_exactly_one_trains_and_the_other_changes_nothing(tmp_path):
    run = tmp_path / "run"
    results = _together(*[[*FAST, f"seed={s}", f"hydra.run.dir={run}"] for s in (1, 2)])
    seed = (1, 2)[_finished(results, late="already holds a completed run")]
    assert summary_file.read(run).seed == seed  # the winner's settings everywhere
    assert f"seed={seed}" in OmegaConf.load(run / ".hydra" / "overrides.yaml")
    assert OmegaConf.load(run / ".hydra" / "config.yaml").seed == seed
    assert not (run / rundir.LOCK).exists()


@pytest.mark.slow  # an in-process run, then two resumes, one trains: ~50 s
def test_two_resumes_started_together_train_once(tmp_path):
    run = tmp_path / "run"
    overrides = [*FAST, "trainer.max_epochs=2"]
    train(compose([*overrides, f"paths.output_dir={run}", "+trainer.max_steps=2"]))  # epoch 0
    (run / ".hydra").mkdir()
    OmegaConf.save(OmegaConf.create(overrides), run / ".hydra" / "overrides.yaml")
    summary_file.write(run, replace(summary_file.read(run), status="interrupted"))
    _finished(
        _together([f"resume={run}"], [f"resume={run}"]),
        late="nothing to resume|while this one was starting",
    )
    summary = summary_file.read(run)
    assert summary.status == "ok" and [s["epochs"] for s in summary.segments] == [1, 1]
    with open(run / "metrics.csv", newline="") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["0", "1"]  # no epoch twice
    assert not list(run.rglob("*.tmp*")) and not (run / rundir.LOCK).exists()


@pytest.mark.slow  # two sweeps, one trains its job: ~40 s
def test_two_sweeps_sharing_a_sweep_dir_run_each_job_once(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [
        "-m",
        *FAST,
        f"hydra.sweep.dir={sweep}",
        "seed=1",
        "hydra.callbacks.report.enabled=false",
    ]
    _finished(_together(cmd, cmd), late="already holds completed jobs")
    summary = summary_file.read(sweep / "0")
    assert summary.status == "ok" and len(summary.segments or [None]) == 1
    assert len((sweep / "0" / "metrics.csv").read_text().splitlines()) == 2  # header + 1 epoch


def test_a_sweep_into_a_dir_another_launch_holds_is_refused_before_any_job(tmp_path):
    sweep = tmp_path / "sweep"
    jobs = [["seed=1"], ["seed=2"]]
    launch.check_targets(["-m", f"hydra.sweep.dir={sweep}", "seed=1,2"], jobs)  # the first sweep
    code = f"from tlbench.runtime import rundir; rundir.Lock({str(sweep)!r}).acquire()"
    env = {k: v for k, v in os.environ.items() if k != rundir.TOKEN_ENV}  # not a job of ours
    held = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert held.returncode != 0 and "right now" in held.stderr
    assert not list(sweep.rglob(".hydra"))


def test_a_job_in_a_worker_process_accepts_only_the_lock_its_own_launch_took(tmp_path):
    sweep = tmp_path / "sweep"
    launch.check_targets(["-m", f"hydra.sweep.dir={sweep}", "seed=1"], [["seed=1"]])
    code = f"from tlbench.runtime import rundir; rundir.Lock({str(sweep)!r}).acquire()"
    # a joblib/submitit worker inherits the launch's token: the lock was taken for it
    worker = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert worker.returncode == 0, worker.stderr[-1500:]
    other = {**os.environ, rundir.TOKEN_ENV: "another-launch"}
    stranger = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=other
    )
    assert stranger.returncode != 0 and "right now" in stranger.stderr


def test_jobs_mapped_to_one_subdir_are_refused_before_anything_is_written(tmp_path):
    sweep = tmp_path / "sweep"
    argv = ["-m", f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=same", "seed=1,2"]
    jobs = [[*argv[1:3], "seed=1"], [*argv[1:3], "seed=2"]]
    with pytest.raises(TlbenchError) as err:
        launch.check_targets(argv, jobs)
    assert "jobs 0 and 1" in str(err.value) and "nothing was changed" in str(err.value)
    assert not sweep.exists()
    # a subdir that differs per job is fine, and each job dir is locked before Hydra starts
    argv[2] = "hydra.sweep.subdir=${hydra.job.override_dirname}"
    jobs = [[*argv[1:3], "seed=1"], [*argv[1:3], "seed=2"]]
    launch.check_targets(argv, jobs)
    assert (sweep / "seed=1" / rundir.LOCK).is_file() and (sweep / "seed=2" / rundir.LOCK).is_file()


def test_default_run_dirs_of_launches_in_the_same_second_differ(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = launch.check_targets([], [[]])
    second = launch.check_targets([], [[]])
    dirs = [Path(a[-1].partition("=")[2]) for a in (first, second)]
    assert dirs[0] != dirs[1] and all((d / rundir.LOCK).is_file() for d in dirs)
    assert all(d.parent == tmp_path / "outputs" / "runs" for d in dirs)


def test_skip_completed_makes_hydra_write_nothing_into_a_finished_job(tmp_path):
    done = tmp_path / "done"
    done.mkdir()
    summary_file.write(done, RunSummary(status="ok"))
    cfg = compose(["skip_completed=true"], return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(done)
    assert cfg.hydra.output_subdir is None  # Hydra then saves no .hydra/
    assert cfg.hydra.job_logging.handlers.file.filename == os.devnull
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(tmp_path / "new")
    assert cfg.hydra.output_subdir == ".hydra"
    assert cfg.hydra.job_logging.handlers.file.filename == str(tmp_path / "new" / "train.log")


@pytest.mark.slow  # a tlbench sweep of two skipped jobs: ~25 s
def test_cli_skip_completed_leaves_finished_jobs_files_untouched(tmp_path):
    sweep = tmp_path / "sweep"
    args = [*FAST, f"hydra.sweep.dir={sweep}", "seed=1,2", "hydra.callbacks.report.enabled=false"]
    for num, overrides in enumerate(sweep_jobs(args)):  # as Hydra's basic sweeper records them
        job = sweep / str(num)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "config.yaml").write_text("original\n")
        (job / "train.log").write_text("the first run's log\n")
        summary_file.write(job, RunSummary(status="ok", overrides=overrides))
    before = {
        p: p.read_bytes() for p in sweep.rglob("*") if p.is_file() and "summary" not in p.name
    }
    proc = run_cli("-m", *args, "skip_completed=true")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("skipped") >= 2 and "Traceback" not in proc.stderr
    assert proc.stdout.count("tlbench run ok") == 2  # each skipped job's summary lines
    for path, data in before.items():
        assert path.read_bytes() == data, path


def test_an_empty_resume_is_an_error_not_a_fresh_default_run(tmp_path):
    with pytest.raises(TlbenchError, match="resume= is empty") as err:
        launch.rewrite_argv(["resume="])
    assert "\n" not in str(err.value)


@pytest.mark.slow  # a tlbench process: ~20 s on a busy 2-core machine
def test_cli_empty_resume_exits_2_and_starts_nothing(tmp_path):
    proc = run_cli("resume=", "model=lenet5", cwd=tmp_path)
    assert proc.returncode == 2 and "resume= is empty" in proc.stderr
    assert not (tmp_path / "outputs").exists()


def test_a_stale_interrupted_ckpt_is_removed_after_a_successful_resume(tmp_path):
    run = tmp_path / "run"
    base = [*FAST, "trainer.max_epochs=2", f"paths.output_dir={run}"]
    train(compose([*base, "+trainer.max_steps=2"]))  # epoch 0 done
    stale = run / "checkpoints" / "interrupted.ckpt"
    stale.write_bytes((run / "checkpoints" / "last.ckpt").read_bytes())  # as SIGINT leaves it
    summary_file.write(run, replace(summary_file.read(run), status="interrupted"))
    resumed = train(compose([*base, f"resume={run}"]))
    assert resumed.status == "ok" and resumed.epochs == 2
    assert not stale.exists() and (run / "checkpoints" / "last.ckpt").is_file()
