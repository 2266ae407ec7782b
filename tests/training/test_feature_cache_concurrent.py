"""One extraction per feature-cache key (issue 23, item 5): jobs that need the same features at
the same time extract them once; the others wait on the key's claim, then read the cache; a
killed extractor's claim is taken over; waiting stays interruptible.

The jobs are real processes calling `feature_cache.prepare` (what `train()` calls) on one cold
cache dir; they are forked from a forkserver that imported torch once, so four cost little more
than one. The full `python -m tlbench` sweep on a real SLURM: tests/runtime/test_slurm_cache.py."""

from __future__ import annotations

import fcntl
import json
import logging
import multiprocessing as mp
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
import torch

from tests.helpers.cli import TINY
from tlbench.config import compose
from tlbench.runtime import signals
from tlbench.training import feature_cache
from tlbench.training.run import build_run

CPU = torch.device("cpu")
PRECISION = "32-true"


def _overrides(tmp_path: Path) -> list[str]:
    return [
        *TINY,
        f"paths.output_dir={tmp_path / 'run'}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "trainer.precision=32-true",
    ]


def _job(overrides, barrier, results, hang_marker=None) -> None:
    """One job: build its model and data, wait for the others, then get the features.
    `hang_marker`: touch it at the first extraction batch and hang there (to be killed)."""
    torch.set_num_threads(1)
    datamodule, module = build_run(compose(overrides))
    stop = None
    if hang_marker is not None:

        def stop(_where: str) -> None:
            Path(hang_marker).touch()
            time.sleep(3600)

    if barrier is not None:
        barrier.wait(timeout=120)
    cache_dir = Path(overrides[-2].split("=", 1)[1])
    cached, _, detail = feature_cache.prepare(
        module, datamodule, cache_dir, PRECISION, CPU, stop=stop
    )
    results.put((os.getpid(), cached.hit, cached.wait_seconds, detail))


@pytest.fixture(scope="module")
def ctx():
    """Forked from a server that imported torch and tlbench once (not the test process: forking
    a process whose OpenMP pool ran is unsafe; not spawn: four fresh imports on two cores)."""
    context = mp.get_context("forkserver")
    context.set_forkserver_preload(["torch", "tlbench.training.run"])
    return context


def _lock_info(lock: Path) -> str:
    return lock.read_text(encoding="utf-8")


def test_four_jobs_on_a_cold_cache_extract_once(ctx, tmp_path):
    overrides = _overrides(tmp_path)
    barrier, results = ctx.Barrier(4), ctx.Queue()
    jobs = [ctx.Process(target=_job, args=(overrides, barrier, results)) for _ in range(4)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(timeout=240)
    assert [job.exitcode for job in jobs] == [0, 0, 0, 0]
    found = [results.get(timeout=5) for _ in jobs]
    assert sorted(hit for _, hit, _, _ in found) == [False, True, True, True], found
    assert len({detail for *_, detail in found}) == 1  # one cache file for all
    cache = Path(found[0][3])
    stored = torch.load(cache, weights_only=True)
    assert set(stored["splits"]) == {"train", "val", "test"}
    left = sorted(p.name for p in cache.parent.iterdir())
    assert left == sorted([cache.name, cache.with_suffix(".lock").name]), left  # no temporary file
    assert _lock_info(cache.with_suffix(".lock")) == ""  # released: names no holder


def test_a_killed_extractors_claim_is_taken_over(ctx, tmp_path, caplog):
    """A job killed (SIGKILL) mid-extraction leaves no cache; the job waiting on its claim gets
    it from the kernel, extracts and writes the cache itself."""
    overrides, marker = _overrides(tmp_path), tmp_path / "extracting"
    results = ctx.Queue()  # kept referenced until the child has it
    extractor = ctx.Process(target=_job, args=(overrides, None, results, str(marker)))
    extractor.start()
    datamodule, module = build_run(compose(overrides))
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert extractor.is_alive() and time.monotonic() < deadline, "the extractor never started"
        time.sleep(0.1)
    lock = next((tmp_path / "cache").glob("*.lock"))
    assert json.loads(_lock_info(lock)) == {"pid": extractor.pid, "host": socket.gethostname()}
    killed = []

    def stop(where: str) -> None:  # called between tries while this job waits: kill the holder
        if not killed:
            assert "waiting" in where
            os.kill(extractor.pid, signal.SIGKILL)
            killed.append(where)

    with caplog.at_level(logging.INFO, logger="tlbench"):
        cached, _, detail = feature_cache.prepare(
            module, datamodule, tmp_path / "cache", PRECISION, CPU, stop=stop
        )
    extractor.join(timeout=30)
    assert extractor.exitcode == -signal.SIGKILL and killed
    assert f"same features (pid {extractor.pid} on {socket.gethostname()})" in caplog.text
    assert "left no cache" in caplog.text
    assert not cached.hit and cached.wait_seconds > 0
    assert set(torch.load(detail, weights_only=True)["splits"]) == {"train", "val", "test"}


def test_a_signal_ends_the_wait_as_an_interruption(tmp_path):
    """SIGTERM while another job holds the claim: the waiting job stops (signals.Interrupted,
    which ends a run as interrupted) instead of waiting on; it writes no cache."""
    overrides = _overrides(tmp_path)
    datamodule, module = build_run(compose(overrides))
    key = feature_cache.cache_key(module, datamodule, PRECISION)
    lock = tmp_path / "cache" / f"{key}.lock"
    lock.parent.mkdir()
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another open file: what a second job's claim is
    try:
        timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
        with signals.Trap() as trap, pytest.raises(signals.Interrupted) as stopped:
            timer.start()
            feature_cache.prepare(
                module, datamodule, tmp_path / "cache", PRECISION, CPU, stop=trap.check
            )
    finally:
        timer.cancel()
        os.close(fd)
    assert stopped.value.signum == signal.SIGTERM
    assert "waiting for another job's feature extraction" in str(stopped.value)
    assert not (tmp_path / "cache" / f"{key}.pt").exists()
