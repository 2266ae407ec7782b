"""The hermetic guard itself (tests/helpers/hermetic/): a process the suite starts that touches a
forbidden path or writes into the repository is recorded, so the test that started it fails."""

from __future__ import annotations

import os
import subprocess
import sys

from tlbench.config import REPO_ROOT


def _touch(tmp_path, code: str) -> str:
    log = tmp_path / "violations.log"
    env = {**os.environ, "TLBENCH_HERMETIC_LOG": str(log)}
    subprocess.run([sys.executable, "-c", code], env=env, check=False, cwd=tmp_path, timeout=120)
    return log.read_text() if log.exists() else ""


def test_reading_a_system_dataset_folder_is_recorded(tmp_path):
    found = _touch(
        tmp_path, "import os\ntry: os.listdir('/usr/share/datasets')\nexcept OSError: pass"
    )
    assert "os.listdir /usr/share/datasets" in found


def test_writing_into_the_repository_is_recorded_and_tmp_is_not(tmp_path):
    target = REPO_ROOT / "outputs" / "hermetic-probe.txt"
    code = f"open({str(tmp_path / 'ok.txt')!r}, 'w').close()\ntry: open({str(target)!r}, 'r')\nexcept OSError: pass"
    found = _touch(tmp_path, code)
    assert str(target) in found and "ok.txt" not in found
    assert not target.exists()


def test_the_suite_runs_with_a_private_home_and_caches():
    home = os.environ["HOME"]
    for var in ("XDG_CACHE_HOME", "TORCH_HOME", "TLBENCH_PRECISION_CACHE", "TLBENCH_CACHE_DIR"):
        assert os.environ[var].startswith(os.path.dirname(home)), var
    assert not os.path.expanduser("~").startswith(str(REPO_ROOT))


def test_rmtree_of_a_tmp_folder_is_not_mistaken_for_a_repo_write(tmp_path):
    """shutil.rmtree names entries relative to an open folder: resolved, not against the cwd."""
    code = (
        "import os, shutil\n"
        f"os.chdir({str(REPO_ROOT)!r})\n"
        f"d = {str(tmp_path / 'tree')!r}\n"
        "os.makedirs(d + '/sub/.hydra'); open(d + '/sub/summary.json', 'w').close()\n"
        "shutil.rmtree(d)"
    )
    assert _touch(tmp_path, code) == ""
    assert not (tmp_path / "tree").exists()
