"""What bench/gpu_acceptance.py attaches to tlbench's own runs, and the reductions it replays.

Callbacks go onto the Trainer that `train(cfg)` builds (bench/gpu.py `watching`), after the run's
own callbacks, so they see each hook last. They only read: no run is changed by being watched.
"""

from __future__ import annotations

import collections
import hashlib
import math
import socket
import traceback
import warnings
import weakref
from datetime import timedelta
from pathlib import Path

import lightning as L
import torch

SYNC_MESSAGE = "synchronizing CUDA operation"  # torch.cuda.set_sync_debug_mode("warn")'s words


class Watcher(L.Callback):
    """A callback the caller keeps after the run: Lightning binds the module's `log` and
    `log_dict` onto every callback, which would keep the module alive through it."""

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self.__dict__.pop("log", None)
        self.__dict__.pop("log_dict", None)


class SyncCounter(Watcher):
    """Host-device synchronisations per training step, counted by torch itself.

    From the end of step `warmup` to the end of step `warmup + window`, torch's sync debug mode
    warns at every synchronising CUDA call; each is recorded with the deepest line of tlbench,
    Lightning or torchmetrics on the stack that made it (`where`). The window spans whole steps: fetching the batch, the on-device transforms
    (`on_after_batch_transfer`), the step, the backward, the optimizer and every callback's
    `on_train_batch_end` (this callback is the last of them). CUDA only: on a CPU it counts
    nothing and says so (`counted` stays False)."""

    def __init__(self, warmup: int = 3, window: int = 20) -> None:
        self.warmup, self.window = warmup, window
        self.per_step: list[int] = []
        self.where: collections.Counter = collections.Counter()
        self.counted = False
        self._catcher, self._step = None, []

    def _start(self) -> None:
        self._catcher = warnings.catch_warnings()  # restores the filters and showwarning
        self._catcher.__enter__()
        warnings.simplefilter("always")  # every sync, not once per line
        self._others, warnings.showwarning = warnings.showwarning, self._show
        torch.cuda.set_sync_debug_mode("warn")

    def _show(self, message, category, filename, lineno, file=None, line=None) -> None:
        if SYNC_MESSAGE in str(message):
            self._step.append(origin(filename, lineno))
        else:  # other warnings are shown as they would have been
            self._others(message, category, filename, lineno, file, line)

    def _stop(self) -> None:
        if self._catcher is None:
            return
        torch.cuda.set_sync_debug_mode(0)
        self._catcher.__exit__(None, None, None)
        self._catcher = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.device.type != "cuda":
            return
        if batch_idx == self.warmup and self._catcher is None and not self.per_step:
            self._start()
            return
        if self._catcher is None:
            return
        self.per_step.append(len(self._step))
        self.where.update(self._step)
        self._step = []
        if len(self.per_step) >= self.window:
            self._stop()
            self.counted = True

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._stop()  # an epoch shorter than the window: what was counted stands

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._stop()

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self._stop()
        super().teardown(trainer, pl_module, stage)


OWNERS = ("/tlbench/", "/lightning/", "/torchmetrics/")  # whose line a sync is put down to


def origin(filename: str, lineno: int) -> str:
    """`package/file.py:line` of the deepest frame of tlbench, Lightning or torchmetrics on the
    stack (torch names its own caller, often inside torch), else torch's."""
    for frame in reversed(traceback.extract_stack()):
        if any(o in frame.filename for o in OWNERS) and "/warnings.py" not in frame.filename:
            return "/".join(Path(frame.filename).parts[-2:]) + f":{frame.lineno}"
    return "/".join(Path(filename).parts[-2:]) + f":{lineno}"


def digest(tensors) -> str:
    """One short hash of tensors' bytes (equal weights <=> equal digest, bit for bit)."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class Recorder(Watcher):
    """What a check reads back after the run: a weak reference to the module (is it freed when
    `train()` returns?), the cached features' device and dtype, the precision plugin's gradient
    scaler, a backbone and a head parameter at each epoch's start and end (did they train?), and
    a digest of the trained weights."""

    def __init__(self) -> None:
        self.module_ref = None
        self.features: dict | None = None
        self.scaler: dict | None = None
        self.epochs: list[dict] = []
        self.weights = None
        self._start = None

    @staticmethod
    def _probe_params(pl_module):
        head = tuple(f"{h}." for h in pl_module.head_names)
        named = list(pl_module.net.named_parameters())
        backbone = next(p for n, p in named if not n.startswith(head))
        return backbone, next(p for n, p in named if n.startswith(head))

    def on_fit_start(self, trainer, pl_module) -> None:
        self.module_ref = weakref.ref(pl_module)
        cached = getattr(trainer.datamodule, "features", None)
        if cached:
            x, _ = cached["train"]
            self.features = {"device": str(x.device), "dtype": str(x.dtype).replace("torch.", "")}

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = [p.detach().clone() for p in self._probe_params(pl_module)]

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        now = self._probe_params(pl_module)
        backbone, head = (not torch.equal(a, b) for a, b in zip(self._start, now, strict=True))
        self.epochs.append({"backbone_trained": backbone, "head_trained": head})
        self._start = None

    def on_train_end(self, trainer, pl_module) -> None:
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        self.scaler = {
            "plugin": type(trainer.precision_plugin).__name__,
            "grad_scaler": type(scaler).__name__ if scaler is not None else None,
            "scale": float(scaler.get_scale()) if scaler is not None else None,
        }
        self.weights = digest(p for p in pl_module.net.parameters() if p.requires_grad)

    @property
    def module_alive(self) -> bool | None:
        return None if self.module_ref is None else self.module_ref() is not None


# What tlbench's DDP reductions send (tlbench/training/module.py, callbacks/image_summaries.py):
# `self.log(..., sync_dist=True)` all-reduces float32 epoch sums; torchmetrics all-gathers its
# int64 counts (accuracy, F1, top-5) and MaxMetric's float32; the validation confusion matrix is
# an int64 sum; DDP's gradient buckets are float32 (mixed precision keeps fp32 weights), bf16 or
# fp16 under `*-true` precisions; Lightning broadcasts Python objects (paths, stop flags).
REDUCED_DTYPES = (torch.float32, torch.int64, torch.bfloat16, torch.float16, torch.float64)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def replay_reductions(backend: str, device: torch.device) -> dict:
    """A world-size-1 process group on `backend` making the same collective calls on the same
    dtypes; returns {call: "ok" | error}. The group is torn down before returning."""
    import torch.distributed as dist

    dist.init_process_group(
        backend,
        init_method=f"tcp://127.0.0.1:{free_port()}",
        rank=0,
        world_size=1,
        timeout=timedelta(seconds=60),
    )
    results = {}
    try:
        for dtype in REDUCED_DTYPES:
            results[f"all_reduce_sum[{dtype}]"] = _collective(dist, "reduce", dtype, device)
            results[f"all_gather[{dtype}]"] = _collective(dist, "gather", dtype, device)
        try:
            box = [{"dirpath": "/tmp/x", "stop": False}]
            dist.broadcast_object_list(box, src=0, device=device)
            dist.barrier()
            results["broadcast_object_list+barrier"] = "ok"
        except Exception as exc:
            results["broadcast_object_list+barrier"] = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        dist.destroy_process_group()
    return results


def _collective(dist, kind: str, dtype: torch.dtype, device: torch.device) -> str:
    try:
        t = (torch.arange(10, device=device) + 1).to(dtype)
        if kind == "reduce":
            out = t.clone()
            dist.all_reduce(out, op=dist.ReduceOp.SUM)
        else:
            parts = [torch.empty_like(t)]
            dist.all_gather(parts, t)
            out = parts[0]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if not torch.equal(out.cpu(), t.cpu()):  # one rank: the sum and the gather are t
            return f"wrong result {out.cpu().tolist()}"
        return "ok"
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]


def finite(value) -> bool:
    return value is not None and math.isfinite(float(value))
