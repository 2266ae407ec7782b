"""bench/pipeline.py (the input pipeline) and bench/gpu.py (the classic experiments on a GPU)
run as a user runs them; the GPU one refuses clearly without CUDA and has a CPU smoke mode."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import torch

from tlbench.config import REPO_ROOT


def _bench(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_pipeline_bench_prints_the_ratio_line():
    r = _bench(
        "bench/pipeline.py", "--sizes", "32", "224", "--augments", "classic",
        "--images", "64", "--batch-size", "32", "--rounds", "1",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert re.fullmatch(r"batched/per-sample at 224 px: \d+\.\dx", lines[-1])
    assert any(line.split()[:2] == ["32", "classic"] for line in lines)


@pytest.mark.skipif(torch.cuda.is_available(), reason="it runs for real where there is a GPU")
def test_gpu_bench_refuses_without_cuda():
    r = _bench("bench/gpu.py", timeout=120)
    assert r.returncode == 2
    assert "no CUDA GPU" in r.stderr and "--smoke" in r.stderr


@pytest.mark.slow
def test_gpu_bench_smoke_mode_runs_the_real_path_on_cpu(tmp_path):
    """Tiny stand-ins (mini_vgg, lenet5, 200 images, 1 epoch): ~3-4 min on 2 busy cores."""
    r = _bench(
        "bench/gpu.py", "--smoke", "--out", str(tmp_path),
        "--only", "vgg16_transfer_cached", "resnet18_32px_scratch", timeout=900,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [line for line in r.stdout.splitlines() if line.startswith("run=")]
    assert len(rows) == 2 and all("status=ok" in row for row in rows)
    assert "cached=True" in rows[0] and "cached=False" in rows[1]
    # TFLOP/s counts the images of the timed phase only: the cached run's train+val extraction
    # (not the test split's 50), the scratch run's one epoch of training steps (not validation)
    timed = [int(re.search(r"timed_images=(\d+)", row).group(1)) for row in rows]
    cached, scratch = (
        json.loads((tmp_path / name / "summary.json").read_text())["split_sizes"]
        for name in ("vgg16_transfer_cached", "resnet18_32px_scratch")
    )
    assert timed == [cached["train"] + cached["val"], scratch["train"]] == [200, scratch["train"]]
    assert all(re.search(r"timed_s=\d", row) for row in rows)
