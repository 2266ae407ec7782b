"""A real, throwaway single-node SLURM for tests marked `slurm` (scripts/slurm-up.sh starts it,
scripts/slurm-down.sh stops it). Never a mock: where the binaries are missing the tests skip."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tlbench.config import REPO_ROOT

BINARIES = ("slurmctld", "slurmd", "munged", "mungekey", "srun", "sinfo")
ENABLE = (
    "tests marked `slurm` start a throwaway single-node SLURM cluster and need Debian's slurm-wlm "
    "and munge (as root: apt-get install -y slurm-wlm munge)"
)


def missing() -> str | None:
    """Why the cluster cannot start here (None: it can)."""
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin"
    gone = [b for b in BINARIES if shutil.which(b, path=path) is None]
    if gone:
        return f"{', '.join(gone)} not found: {ENABLE}"
    if os.geteuid() != 0:
        return f"slurmd must run as root: {ENABLE}, and run the tests as root"
    return None


@dataclass
class Cluster:
    dir: Path

    @property
    def env(self) -> dict[str, str]:
        """What srun / sbatch / sinfo need to reach this cluster (and nothing else)."""
        return {**os.environ, "SLURM_CONF": str(self.dir / "slurm.conf")}

    def log(self) -> str:
        """The daemons' logs (for a failing test's message)."""
        return "\n".join(
            f"== {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted((self.dir / "log").glob("*.log"))
        )


def start() -> Cluster:
    # Not pytest's tmp_path: its 0700 parents keep user munge out of its socket folder.
    where = Path(tempfile.mkdtemp(prefix="tlbench-slurm-"))
    where.chmod(0o755)
    done = subprocess.run(
        [str(REPO_ROOT / "scripts" / "slurm-up.sh"), str(where)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    cluster = Cluster(where)
    if done.returncode != 0:
        stop(cluster)
        raise RuntimeError(f"slurm-up.sh failed:\n{done.stdout}{done.stderr}\n{cluster.log()}")
    return cluster


def stop(cluster: Cluster) -> None:
    subprocess.run(
        [str(REPO_ROOT / "scripts" / "slurm-down.sh"), str(cluster.dir)],
        capture_output=True,
        timeout=60,
    )
    shutil.rmtree(cluster.dir, ignore_errors=True)
