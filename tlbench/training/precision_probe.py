"""`trainer.precision=auto` on a CPU with native bf16: measure, don't assume.

bf16 autocast is not faster for every network and input on such a CPU (BENCHMARKS.md, "Precision
on CPU"). So a copy of the run's network takes a few training steps at the run's batch shape in
each precision, and the faster one trains (bf16 must win by `PREFER_BF16`). The result is cached
per machine and shape under `$XDG_CACHE_HOME/tlbench/precision/` (or TLBENCH_PRECISION_CACHE).
Why: docs/architecture.md, "Precision on CPU".
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from tlbench import atomic
from tlbench.models import outputs
from tlbench.training.device import accelerator_kind, autocast, choose_precision

log = logging.getLogger("tlbench")

CANDIDATES = ("32-true", "bf16-mixed")
PREFER_BF16 = 1.1  # bf16 must be >= 10 % faster: below that, fp32's exactness wins
WARMUP, TIMED = 2, 3  # oneDNN builds its kernels on the first steps of a shape and format


def cache_dir() -> Path:
    if os.environ.get("TLBENCH_PRECISION_CACHE"):
        return Path(os.environ["TLBENCH_PRECISION_CACHE"])
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "tlbench" / "precision"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _key(net: nn.Module, shape: tuple[int, ...], channels_last: bool, train_all=False) -> str:
    params = list(net.parameters())
    facts = [
        type(net).__name__,
        sum(p.numel() for p in params),
        sum(p.numel() for p in params if p.requires_grad or train_all),
        list(shape),
        channels_last,
        torch.__version__,
        _cpu_model(),
        torch.get_num_threads(),
    ]
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:20]


def measure(
    net: nn.Module,
    shape: tuple[int, ...],
    channels_last: bool,
    train_all: bool = False,
    steps: tuple[int, int] = (WARMUP, TIMED),
) -> dict[str, float]:
    """Training images per second of a copy of `net` in each candidate precision (the run's own
    network, its weights and BatchNorm statistics are left untouched). The timed steps alternate
    between the precisions and each rate is the median step's, so a machine whose load changes
    while it measures (other sweep jobs) slows both alike. `train_all`: time the steps with every
    parameter trainable (a scheduled strategy's later, costlier phase). `steps`: (warm-up, timed)
    steps per precision (the tests run every model family with (0, 1))."""
    # The run's random state must not depend on whether the probe ran or hit its cache: the
    # inputs and any dropout here draw from a forked RNG, restored afterwards.
    with torch.random.fork_rng(devices=[]):
        return _measure(net, shape, channels_last, train_all, steps)


def _measure(net, shape, channels_last: bool, train_all: bool, steps) -> dict[str, float]:
    probe = copy.deepcopy(net)
    if train_all:
        probe.requires_grad_(True)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    probe.to(memory_format=fmt)
    x = torch.randn(shape).contiguous(memory_format=fmt)
    y = torch.zeros(shape[0], dtype=torch.long)  # every label costs the same

    def step(precision: str) -> float:
        start = time.perf_counter()
        # The training step's own loss (outputs.loss), inside autocast as Lightning runs it: a
        # network in train mode may return auxiliary logits (googlenet, inception_v3), which
        # training also backpropagates through.
        with autocast(precision, "cpu"):
            loss, _ = outputs.loss(probe(x), y)
        if loss.requires_grad:
            loss.backward()
        probe.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    warmup, timed = steps
    for precision in CANDIDATES:
        for _ in range(warmup):
            step(precision)
    times: dict[str, list[float]] = {p: [] for p in CANDIDATES}
    for _ in range(timed):
        for precision in CANDIDATES:
            times[precision].append(step(precision))
    return {p: round(shape[0] / statistics.median(t), 1) for p, t in times.items()}


def choose(
    net: nn.Module, shape: tuple[int, ...], channels_last: bool, train_all: bool = False
) -> tuple[str, str, dict]:
    """(precision, the reason for the log, the measurement for summary.json). `train_all`: see
    `measure`; a run whose schedule unfreezes layers later is timed in its largest phase."""
    path = cache_dir() / f"{_key(net, shape, channels_last, train_all)}.json"
    rates, cached = None, path.is_file()
    if cached:
        try:
            rates = {k: float(v) for k, v in json.loads(path.read_text()).items()}
        except (OSError, ValueError, AttributeError):
            rates, cached = None, False  # unreadable: measure again and rewrite it
    if rates is None or set(rates) != set(CANDIDATES):
        rates, cached = measure(net, shape, channels_last, train_all), False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic.write_text(path, json.dumps(rates))
        except OSError as exc:  # a read-only home must not stop a run
            log.warning("could not cache the precision measurement in %s (%s)", path, exc)
    bf16 = rates["bf16-mixed"] >= PREFER_BF16 * rates["32-true"]
    precision = "bf16-mixed" if bf16 else "32-true"
    why = (
        f"measured on this CPU for this network and batch shape{' (cached)' if cached else ''}: "
        f"{rates['bf16-mixed']:.0f} img/s in bf16 autocast vs {rates['32-true']:.0f} in fp32"
    )
    return precision, why, {"img_per_s": rates, "cached": cached, "file": str(path)}


def for_run(requested, accelerator, net: nn.Module, shape, channels_last: bool, train_all: bool):
    """(precision, the reason for the log, the probe's measurement or None): the device's choice
    (tlbench.training.device.choose_precision), measured here where that is bf16 on a CPU for
    `auto` (native bf16 is not always faster)."""
    precision, why = choose_precision(requested, accelerator)
    cpu = accelerator_kind(accelerator) == "cpu"
    if str(requested) == "auto" and precision == "bf16-mixed" and cpu:
        return choose(net, shape, channels_last, train_all)
    return precision, why, None
