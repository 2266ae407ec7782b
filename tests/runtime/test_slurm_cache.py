"""One extraction per feature-cache key on a real SLURM (issue 23, item 5): a sweep of four
transfer jobs (two seeds x two LRs: the same frozen backbone and images, so the same cache key)
as a job array on a cold cache. Jobs that start together wait on the key's claim instead of each
extracting; the ones after read the cache. The cluster: tests/helpers/slurm.py (skipped, saying
how to enable it, without slurm-wlm and munge)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers.cli import TINY

pytestmark = pytest.mark.slurm

LAUNCHER = [
    "hydra/launcher=slurm",
    "hydra.launcher.gpus_per_node=0",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=5",
    "hydra.launcher.array_parallelism=4",
]


@pytest.mark.slow  # ~1-2 min: four jobs on the cluster's two CPUs, then the report
def test_four_array_jobs_on_a_cold_cache_extract_once(slurm_cluster, tmp_path):
    sweep, cache = tmp_path / "sweep", tmp_path / "cache"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tlbench",
            "-m",
            *LAUNCHER,
            f"hydra.sweep.dir={sweep}",
            f"paths.cache_dir={cache}",
            *TINY,
            "strategy=transfer",
            "strategy.cache_features=true",
            "trainer.precision=32-true",
            "test_after_fit=false",
            "data.num_workers=0",
            "seed=0,1",
            "optimizer.lr=0.001,0.002",
        ],
        cwd=tmp_path,
        env={**slurm_cluster.env, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:] + slurm_cluster.log()
    summaries = [json.loads((sweep / str(i) / "summary.json").read_text()) for i in range(4)]
    assert [s["status"] for s in summaries] == ["ok"] * 4, [s.get("error") for s in summaries]
    assert sorted(s["feature_cache_hit"] for s in summaries) == [False, True, True, True]
    assert len({s["feature_cache"] for s in summaries}) == 1
    assert len(list(cache.glob("*.pt"))) == 1 and not list(cache.glob("*tmp*"))
    # every job's cost counts the one extraction's time; waiting is not part of it
    extraction = {json.dumps(s["feature_extraction_seconds"]) for s in summaries}
    assert len(extraction) == 1
    fit_cost = sum(v for k, v in summaries[0]["feature_extraction_seconds"].items() if k != "test")
    assert all(s["fit_seconds"] >= fit_cost - 0.02 for s in summaries)
    assert all(s["feature_cache_wait_seconds"] >= 0 for s in summaries)
    assert (sweep / "report.md").is_file()
