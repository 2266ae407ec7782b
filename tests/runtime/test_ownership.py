"""A run dir owns only what tlbench wrote (issue 22 item 2): overwrite=true deletes nothing else,
foreign files and planted links are refused by name, and run dirs in places that hold something
else (/, home, the repository, the package, conf/, a dataset) are refused before anything is
written. The dirs are built by hand; each check asserts the message and the files on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.helpers.cli import TINY, run_cli
from tlbench import summary_file
from tlbench.config.app import CONF_DIR, PACKAGE_DIR, REPO_ROOT
from tlbench.errors import TlbenchError
from tlbench.runtime import launch, owned, rundir
from tlbench.summary_file import RunSummary

CLI = ["model=lenet5", "strategy=scratch", *TINY]


@pytest.fixture(autouse=True)
def _release_locks():
    yield
    rundir.release_all()  # check_targets holds the dirs' locks for the launch (this process)


def _old_run(path: Path, status: str = "interrupted") -> Path:
    """What an earlier tlbench run left (claimed, with checkpoints)."""
    (path / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(["model=lenet5"]), path / ".hydra" / "overrides.yaml")
    (path / "checkpoints").mkdir()
    (path / "checkpoints" / "last.ckpt").write_bytes(b"ckpt")
    summary_file.write(path, RunSummary(status=status, epochs=1, overrides=["model=lenet5"]))
    owned.claim(path)
    return path


def _snapshot(path: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _colleague_files(run: Path) -> None:
    (run / "mydata").mkdir()
    (run / "mydata" / "notes.txt").write_text("mine")
    (run / ".ssh").mkdir()
    (run / ".ssh" / "id_ed25519").write_text("key")


def test_overwrite_refuses_a_dir_with_foreign_files_and_deletes_nothing(tmp_path):
    run = _old_run(tmp_path / "run")
    _colleague_files(run)
    before = _snapshot(run)
    with pytest.raises(TlbenchError) as err:
        launch.check_targets([f"hydra.run.dir={run}", "overwrite=true"], [[]])
    message = str(err.value)
    assert ".ssh" in message and "mydata" in message and "nothing was deleted" in message
    assert "\n" not in message and _snapshot(run) == before
    assert not (run / rundir.LOCK).exists()  # the refused launch left nothing behind
    # without the colleague's files, overwrite deletes exactly what tlbench wrote
    for name in ("mydata", ".ssh"):
        owned._delete(run / name)
    launch.check_targets([f"hydra.run.dir={run}", "overwrite=true"], [[]])
    assert sorted(p.name for p in run.iterdir()) == sorted([owned.MANIFEST, rundir.LOCK])


@pytest.mark.slow  # a tlbench process: ~20 s on a busy 2-core machine
def test_cli_overwrite_with_foreign_files_exits_2_and_keeps_them(tmp_path):
    run = _old_run(tmp_path / "run")
    _colleague_files(run)
    before = _snapshot(run)
    proc = run_cli(*CLI, f"hydra.run.dir={run}", "overwrite=true")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "mydata" in proc.stderr and "Traceback" not in proc.stderr
    assert _snapshot(run) == before and not (run / rundir.LOCK).exists()


def test_owned_names_in_a_dir_tlbench_never_claimed_are_refused(tmp_path):
    project = tmp_path / "project"  # someone's own training: checkpoints/ without a manifest
    (project / "checkpoints").mkdir(parents=True)
    (project / "checkpoints" / "model.ckpt").write_bytes(b"theirs")
    before = _snapshot(project)
    for extra in ([], ["overwrite=true"]):
        with pytest.raises(TlbenchError, match="checkpoints .*tlbench did not write"):
            launch.check_targets([f"hydra.run.dir={project}", *extra], [[]])
    assert _snapshot(project) == before and not (project / owned.MANIFEST).exists()


@pytest.mark.parametrize("planted", ["metrics.csv", "checkpoints/last.ckpt", "tensorboard"])
def test_planted_links_in_a_run_dir_are_never_written_through(tmp_path, planted):
    run = _old_run(tmp_path / "run", status="ok")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("precious")
    link = run / planted
    if link.exists():
        link.unlink()
    link.symlink_to(victim / "precious.txt" if "." in planted else victim)
    before = _snapshot(tmp_path)
    for argv in (
        [f"hydra.run.dir={run}", "overwrite=true"],
        [f"hydra.run.dir={run}", "skip_completed=true"],
        [f"resume={run}", f"hydra.run.dir={run}"],
    ):
        with pytest.raises(TlbenchError, match="symbolic links pointing outside") as err:
            launch.check_targets(argv, [[]])
        assert planted in str(err.value)
    assert _snapshot(tmp_path) == before and (victim / "precious.txt").read_text() == "precious"


PLACES = {
    "root": lambda tmp: Path("/"),
    "home": lambda tmp: Path.home(),
    "repo": lambda tmp: REPO_ROOT,
    "in-repo": lambda tmp: REPO_ROOT / "my_runs" / "a",
    "outputs-itself": lambda tmp: REPO_ROOT / "outputs",
    "package": lambda tmp: PACKAGE_DIR / "runs",
    "conf": lambda tmp: CONF_DIR / "model",
}


@pytest.mark.parametrize("key", ["hydra.run.dir", "hydra.sweep.dir", "paths.output_dir", "resume"])
@pytest.mark.parametrize("place", sorted(PLACES))
def test_places_that_hold_something_else_are_refused_before_anything_is_written(
    tmp_path, key, place
):
    where = PLACES[place](tmp_path)
    existed = where.exists()
    argv = {
        "hydra.run.dir": [f"hydra.run.dir={where}"],
        "hydra.sweep.dir": ["-m", f"hydra.sweep.dir={where}", "seed=1,2"],
        "paths.output_dir": [f"hydra.run.dir={tmp_path / 'run'}", f"paths.output_dir={where}"],
        "resume": [f"resume={where}", f"hydra.run.dir={where}"],
    }[key]
    jobs = [["seed=1"], ["seed=2"]] if key == "hydra.sweep.dir" else [[]]
    with pytest.raises(TlbenchError) as err:
        launch.check_targets(argv, jobs)
    assert "a run dir cannot be" in str(err.value) and "nothing was written" in str(err.value)
    assert where.exists() == existed and not (where / rundir.LOCK).exists()
    assert not (tmp_path / "run").exists()


def test_a_dir_under_outputs_is_a_valid_place():
    owned.check_place(REPO_ROOT / "outputs" / "runs" / "x", "hydra.run.dir", "x")  # no error


def test_a_run_dir_holding_the_dataset_is_refused(tmp_path):
    run = tmp_path / "run"
    (run / "ds" / "cat").mkdir(parents=True)  # the dataset lives inside the run dir
    (run / "ds" / "cat" / "a.png").write_bytes(b"png")
    before = _snapshot(run)
    data = ["data=imagefolder", f"data.root={run / 'ds'}"]
    for argv in (
        [f"hydra.run.dir={run}", *data, "overwrite=true"],
        [f"hydra.run.dir={run}", *data],
    ):
        with pytest.raises(TlbenchError, match="a dataset folder"):
            launch.check_targets(argv, [data])
    assert _snapshot(run) == before


@pytest.mark.slow  # a tlbench process: ~20 s on a busy 2-core machine
def test_cli_refuses_the_file_system_root(tmp_path):
    proc = run_cli(*CLI, "hydra.run.dir=/", cwd=tmp_path)
    assert proc.returncode == 2 and "file system root" in proc.stderr
    assert not Path("/", rundir.LOCK).exists() and not Path("/", ".hydra").exists()


@pytest.mark.slow  # 10-40 s of subprocesses; make test-full runs it
def test_a_command_line_hydra_refuses_leaves_no_dir_and_info_flags_lock_nothing(tmp_path):
    """The checks pass and lock the dirs, then Hydra's own parser refuses an unknown flag: the
    dirs the launch created are gone again. `--cfg job` prints the config and creates nothing."""
    proc = run_cli("--bogus", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode == 2 and "unrecognized arguments: --bogus" in proc.stderr
    proc = run_cli("--cfg", "job", "model=lenet5", f"hydra.run.dir={tmp_path / 'run2'}")
    assert proc.returncode == 0 and "model:" in proc.stdout, proc.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == []
