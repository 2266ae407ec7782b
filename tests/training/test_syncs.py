"""Issue 25 item 2: a training step makes no host-device synchronisation the algorithm does not
need, and the non-finite-loss guard still stops a diverged run within one logging interval.

On a GPU, reading a device value (`.item()`, `bool(t)`, `float(t)`, `.tolist()`, `.cpu()`), an op
whose output size depends on the values (`nonzero`, `unique`, boolean-mask indexing, CUDA's
`bincount`) or `torch.tensor(..., device=)` (a blocking copy) makes the host wait for all queued
work: once a step, and the GPU idles while the host prepares the next step. On the CPU the test
counts those operations in a real run (composed config, datamodule, module, the Trainer with
every callback a run has), step by step:

- at the dispatcher (a TorchDispatchMode): `_local_scalar_dense` (what item/bool/float/int call)
  and the ops sized by values;
- in Python: Tensor.tolist / .numpy / .cpu, and torch.tensor / as_tensor given a device.

Not counted: the DataLoader (host tensors, before the batch moves to the device) and torch.optim's
step counters (`state["step"]` is a host tensor unless capturable/fused: reading it never waits
for a GPU).

What remains, by design: at a logging step (`trainer.log_every_n_steps`) the guard reads its
flag once and Lightning reads the logged step values to write them; at an epoch's last batch
the guard reads its flag. (Lightning converts on-step progress-bar values after every step, bar
or no bar: the step loss is therefore not on the bar.) Not seen on a CPU: fp16 (`16-mixed`),
whose GradScaler reads its inf flag every step to skip the step, by PyTorch's design.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from tlbench.errors import TlbenchError
from tlbench.training.callbacks.log_steps import logs_this_step
from tlbench.training.run import build_run
from tlbench.training.trainer import build_trainer

RUN = [
    "model=lenet5",
    "strategy=scratch",
    "data.samples_per_class=8",  # 80 training images: 20 steps of 4 in the epoch
    "data.batch_size=4",
    "test_after_fit=false",
    "callbacks.images=null",
    "trainer.num_sanity_val_steps=0",
    "trainer.limit_val_batches=2",
]
READS = {"_local_scalar_dense"}  # every item() / bool() / float() / int()
SIZED_BY_VALUES = {
    "nonzero",
    "unique",
    "_unique",
    "_unique2",
    "unique_dim",
    "unique_consecutive",
    "masked_select",
    "bincount",  # CUDA reads min and max back to size its output
    "repeat_interleave",
}
HOST_ONLY = ("torch/utils/data/", "torch/optim/")  # see the module docstring


def _caller() -> str | None:
    """None for host-only callers, else the nearest caller outside torch and this file."""
    frame, where = sys._getframe(2), None
    while frame is not None:
        path = frame.f_code.co_filename.replace("\\", "/")
        if any(p in path for p in HOST_ONLY):
            return None
        if where is None and "/torch/" not in path and not path.endswith("test_syncs.py"):
            where = f"{'/'.join(path.split('/')[-2:])}:{frame.f_lineno}"
        frame = frame.f_back
    return where or "?"


class Syncs(L.Callback):
    """Counts would-be syncs per training-step window: window i runs from the end of batch
    i-1's `on_train_batch_end` to the end of batch i's (this callback is the last one)."""

    def __init__(self) -> None:
        self.window, self.counts, self.logged = 0, Counter(), set()
        self.what: dict[int, list[str]] = {}

    def record(self, name: str) -> None:
        where = _caller()
        if where is None:
            return
        self.counts[self.window] += 1
        self.what.setdefault(self.window, []).append(f"{name} at {where}")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if logs_this_step(trainer):
            self.logged.add(batch_idx)
        self.window = batch_idx + 1


class _Dispatch(TorchDispatchMode):
    def __init__(self, syncs: Syncs) -> None:
        super().__init__()
        self.syncs = syncs

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        masked = name.startswith("index") and any(
            isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8)
            for i in (args[1] if len(args) > 1 and isinstance(args[1], (list, tuple)) else ())
        )
        if name in READS or name in SIZED_BY_VALUES or masked:
            self.syncs.record(name)
        return func(*args, **(kwargs or {}))


def _count_python_level(monkeypatch, syncs: Syncs) -> None:
    for name in ("tolist", "numpy", "cpu"):
        original = getattr(torch.Tensor, name)

        def counted(self, *a, _original=original, _name=name, **kw):
            syncs.record(_name)
            return _original(self, *a, **kw)

        monkeypatch.setattr(torch.Tensor, name, counted)
    for name in ("tensor", "as_tensor"):
        original = getattr(torch, name)

        def made(*a, _original=original, _name=name, **kw):
            if kw.get("device") is not None:
                syncs.record(f"{_name}(device=)")
            return _original(*a, **kw)

        monkeypatch.setattr(torch, name, made)


def fit_counting(cfg, monkeypatch, extra: L.Callback | None = None):
    """A real fit of one epoch with the run's own trainer; returns (Syncs, trainer, module)."""
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True)
    datamodule, module = build_run(cfg)
    trainer, _, _ = build_trainer(cfg, run_dir, None, "32-true")
    syncs = Syncs()
    trainer.callbacks.extend([c for c in (extra, syncs) if c is not None])
    _count_python_level(monkeypatch, syncs)
    with _Dispatch(syncs):
        trainer.fit(module, datamodule=datamodule)
    return syncs, trainer, module


@pytest.mark.parametrize("augment", ["none", "classic", "strong"])
def test_training_steps_make_no_sync_between_logging_steps(cfg_factory, monkeypatch, augment):
    """No logging step inside the epoch: every step but the last makes no sync at all, for each
    input pipeline, with the LRs logged per step and the progress bar on."""
    cfg = cfg_factory(
        *RUN,
        f"data.augment={augment}",
        "trainer.log_every_n_steps=1000",
        "callbacks.learning_rates.logging_interval=step",
        "trainer.enable_progress_bar=true",  # the default: its refreshes read nothing either
    )
    syncs, trainer, _ = fit_counting(cfg, monkeypatch)
    steps = trainer.num_training_batches
    assert steps >= 20 and not syncs.logged
    inner = {w: syncs.what[w] for w in range(1, steps - 1) if syncs.counts[w]}
    assert not inner, f"syncs inside training steps: {inner}"
    # the epoch's last step: the guard's one read of its flag
    assert syncs.counts[steps - 1] <= 1, syncs.what.get(steps - 1)


def test_syncs_come_only_at_logging_steps_and_are_few(cfg_factory, monkeypatch):
    """With a logging interval of 5, the reads fall at the logging steps (the guard's, in the
    step's window, and Lightning's, right after it), a handful each."""
    cfg = cfg_factory(*RUN, "data.augment=strong", "trainer.log_every_n_steps=5")
    syncs, trainer, _ = fit_counting(cfg, monkeypatch)
    steps = trainer.num_training_batches
    assert len(syncs.logged) >= 4
    allowed = {w for i in syncs.logged for w in (i, i + 1)} | {steps - 1}
    outside = {w: syncs.what[w] for w in range(1, steps) if syncs.counts[w] and w not in allowed}
    assert not outside, f"syncs away from logging steps: {outside}"
    per_logging_step = sum(syncs.counts[w] for w in range(1, steps)) / len(syncs.logged)
    assert per_logging_step <= 3, syncs.what


class _PoisonAt(L.Callback):
    """Sets one weight to NaN before batch `at`: that step's loss is NaN, as after a blow-up."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.at:
            with torch.no_grad():
                weight = next(pl_module.net.parameters())
                weight[(0,) * weight.dim()] = float("nan")


def test_nan_loss_is_caught_within_one_logging_interval(cfg_factory, monkeypatch):
    cfg = cfg_factory(*RUN, "trainer.log_every_n_steps=5")
    with pytest.raises(TlbenchError) as err:
        fit_counting(cfg, monkeypatch, extra=_PoisonAt(7))
    message = str(err.value)
    # the first non-finite step is named (global_step counts the step just taken) ...
    assert "the training loss became NaN at step 8 (epoch 0, batch 7)" in message
    # ... and the run stopped at the next logging step, not at the end of the epoch
    assert "stopped at its next check, step 10" in message
    assert "no epoch had finished" in message
