"""bench/gpu_acceptance.py, the one-call GPU acceptance run, in its CPU smoke mode: every check
runs what a CPU can (tiny nets, 32 px, a few steps) and says SKIP, with its reason, where it needs
CUDA; the JSON record and the exit code are what a GPU run leaves."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from tlbench.config import REPO_ROOT

CHECKS = [
    "bf16", "fp16", "syncs", "feature_cache", "lp_ft", "deterministic", "inference", "memory",
    "nccl", "ddp", "compile",
]  # fmt: skip
CPU_CHECKS = {"feature_cache", "lp_ft", "deterministic", "inference"}  # PASS for real on a CPU


def _acceptance(tmp_path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "bench/gpu_acceptance.py", *args, "--work", str(tmp_path / "work")]
        + ["--out", str(tmp_path / "out")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow  # 10-40 s of subprocesses; make test-full runs it
@pytest.mark.skipif(torch.cuda.is_available(), reason="it runs for real where there is a GPU")
def test_refuses_without_cuda_and_points_at_smoke(tmp_path):
    r = _acceptance(tmp_path, timeout=120)
    assert r.returncode == 2
    assert "no CUDA GPU" in r.stderr and "--smoke" in r.stderr
    assert not (tmp_path / "out").exists()  # refused before writing anything


def test_smoke_some_checks_record_pass_and_skip_with_their_cpu_parts(tmp_path):
    """The fast share (~20 s of runs): a check that passes on a CPU, and CUDA-only ones that
    still run their CPU part; no timed runs with --only."""
    r = _acceptance(tmp_path, "--smoke", "--only", "bf16", "feature_cache", "memory", "nccl")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    doc = json.loads((tmp_path / "out" / "gpu_acceptance.json").read_text())
    status = {c["check"]: c["status"] for c in doc["checks"]}
    assert status == {"bf16": "SKIP", "feature_cache": "PASS", "memory": "SKIP", "nccl": "SKIP"}
    assert "CUDA only" in doc["checks"][0]["reason"] and not doc["checks"][0]["data"]
    found = {c["check"]: c["data"] for c in doc["checks"]}
    assert found["feature_cache"]["hits"] == [False, True]
    assert found["memory"]["module_alive_after_run"] == [False, False]
    assert found["nccl"]["calls"]["all_reduce_sum[torch.int64]"] == "ok"
    assert doc["timed"] == [] and doc["targets"] == [] and doc["exit_code"] == 0
    assert "PASS  feature_cache" in r.stdout  # the closing summary table


@pytest.mark.slow
def test_smoke_runs_every_check_and_the_timed_case_on_cpu(tmp_path):
    """Every check and the timed stand-ins: ~65 s on 2 busy cores."""
    r = _acceptance(tmp_path, "--smoke")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    doc = json.loads((tmp_path / "out" / "gpu_acceptance.json").read_text())
    status = {c["check"]: c["status"] for c in doc["checks"]}
    assert list(status) == CHECKS
    assert {c for c, s in status.items() if s == "PASS"} == CPU_CHECKS, doc["checks"]
    assert {c for c, s in status.items() if s == "SKIP"} == set(CHECKS) - CPU_CHECKS
    for c in doc["checks"]:  # each printed with its reason
        assert c["reason"] and f"{c['status']} {c['check']}: {c['reason']}" in r.stdout
    found = {c["check"]: c["data"] for c in doc["checks"]}
    # the skipped checks still ran their CPU part: modules freed after train(), the DDP
    # reductions' collectives over gloo, the sync counter's runs on the on-device pipeline
    assert found["memory"]["module_alive_after_run"] == [False, False]
    assert found["nccl"]["calls"]["all_reduce_sum[torch.float32]"] == "ok"
    assert found["nccl"]["calls"]["all_gather[torch.int64]"] == "ok"
    assert "on the device" in found["syncs"]["classic"]["input_pipeline"]
    assert found["feature_cache"]["features"][0]["device"] == "cpu"
    assert found["lp_ft"]["epochs"][0] == {"backbone_trained": False, "head_trained": True}
    # the timed seed-001 case with its stand-ins; the targets are for a GPU
    assert [row["run"] for row in doc["timed"]] == ["vgg16_transfer", "vgg16_scratch"]
    assert all(row["status"] == "ok" and row["fit_s"] > 0 for row in doc["timed"])
    assert [t["status"] for t in doc["targets"]] == ["SKIP", "SKIP"]
    assert doc["exit_code"] == 0 and doc["smoke"] is True
