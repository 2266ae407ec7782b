"""The feature cache's file: what it holds, where it was made, and how it is read and written
(tlbench.training.feature_cache decides what to cache and extracts it).

One file per cache key, `<key>.pt`: {"splits": {split: {"x", "y", "seconds", "made_on"}},
"version"}; a split's entry is a prefix of the split in its unshuffled order. `numerics(device)`
goes into the key; `made_on(device)` names the machine an entry was extracted on, for its cost.
Details: docs/architecture.md, "Feature cache".
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import platform
import re
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from tlbench import atomic, safe_load

log = logging.getLogger("tlbench")
VERSION = 3  # 3: entries per split (prefixes allowed, each with its cost and its device)


def _hash_split(h, split) -> None:
    items = split.items
    if isinstance(items, torch.Tensor):
        h.update(items.contiguous().numpy().tobytes())
    else:
        for p in items:
            st = os.stat(p)
            h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}".encode())
    h.update(split.targets.tobytes())


def cache_key(module, datamodule, precision: str, device: torch.device | None = None) -> str:
    """The hash naming the file (see tlbench.training.feature_cache for what goes in)."""
    h = hashlib.sha256()
    heads = tuple(module.head_names)
    for name, tensor in module.net.state_dict().items():
        if not name.startswith(tuple(f"{x}." for x in heads)):
            h.update(name.encode())
            h.update(
                tensor.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes()
                if tensor.numel()
                else b""
            )
    meta = {
        "v": VERSION,
        "numerics": numerics(device or torch.device("cpu")),
        "model": module.hparams.model,
        "preprocess": datamodule.preprocess.to_dict(),
        "precision": precision,
        "channels_last": module.channels_last,
        "classes": list(datamodule.class_names),
    }
    h.update(json.dumps(meta, sort_keys=True, default=str).encode())
    for split_name in sorted(datamodule.splits):
        h.update(split_name.encode())
        _hash_split(h, datamodule.splits[split_name])
    return h.hexdigest()[:24]


@dataclass(frozen=True)
class Entry:
    """One split's cached head inputs `x` and labels `y` (a prefix of the split), what
    extracting them cost (`seconds`) and on what (`made_on`)."""

    x: torch.Tensor
    y: torch.Tensor
    seconds: float
    made_on: str


def numerics(device: torch.device) -> dict:
    """Key material that changes the features' numbers: the device type (CPU and CUDA kernels
    round differently), torch's minor version (kernels change between releases), and on CUDA the
    compute capability (other kernels per architecture) and the TF32 switches (fp32 matmuls and
    convolutions at ~10-bit mantissa). cuDNN's benchmark/deterministic choices only pick among
    algorithms of the same precision (differences at rounding level, like batch size): not keyed."""
    out = {"device": device.type, "torch": ".".join(torch.__version__.split(".")[:2])}
    if device.type == "cuda":
        out["capability"] = list(torch.cuda.get_device_capability(device))
        out["tf32"] = [torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32]
    return out


@contextlib.contextmanager
def same_numerics(key_numerics: dict):
    """Extract with the TF32 switches the key recorded (they may have changed since: the run
    sets its own before fit, and extraction under DDP happens inside fit)."""
    if "tf32" not in key_numerics:
        yield
        return
    before = [torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32]
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = key_numerics["tf32"]
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def made_on(device: torch.device) -> str:
    """The machine an extraction ran on, as its cost depends on it: the GPU's name, or the CPU's
    model (a login node's CPU and a compute node's take very different times)."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"{device.type}: {_cpu_model()}"


@functools.lru_cache(maxsize=1)
def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def load(path: Path, device: torch.device) -> dict[str, Entry] | None:
    """The cached entries, or None when the file cannot be read (truncated, corrupt, another
    format): it is then named in a warning, moved aside to `<file>.corrupt` and rebuilt, so one
    bad file never fails every later run."""
    try:
        stored = safe_load.read(path, "feature cache", map_location=device)
        if stored.get("version") != VERSION:
            raise ValueError(f"format {stored.get('version')}, not {VERSION}")
        return {
            s: Entry(v["x"], v["y"], float(v["seconds"]), str(v["made_on"]))
            for s, v in stored["splits"].items()
        }
    except FileNotFoundError:  # moved aside by another job since it was seen
        return None
    except Exception as exc:  # a TlbenchError from safe_load, or the format check above
        aside = path.with_name(path.name + ".corrupt")
        with contextlib.suppress(FileNotFoundError):  # another job moved it aside first
            atomic.rename(path, aside)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        log.warning(
            "feature cache %s cannot be read (%s: %s); moved aside to %s, rebuilding it",
            path,
            type(exc).__name__,
            first,
            aside,
        )
        return None


def remove_orphans(folder: Path) -> None:
    """Temporary files of cache writes killed earlier (their writer's pid is gone; runs sharing
    the cache keep theirs), and older versions' `<key>.tmp` files, untouched for an hour."""
    atomic.remove_orphans(folder)
    for old in folder.glob("*.tmp") if folder.is_dir() else []:
        with contextlib.suppress(OSError):
            if (
                re.fullmatch(r"[0-9a-f]{24}\.tmp", old.name)
                and time.time() - old.stat().st_mtime > 3600
            ):
                old.unlink()


def store(path: Path, entries: dict[str, Entry]) -> None:
    """Write the cache beside, then rename (tlbench.atomic): a kill or a full disk mid-write
    leaves no truncated cache. A disk that refuses it is a warning, not a failed run: this run
    trains on the features in memory; only later runs lose the cache."""
    remove_orphans(path.parent)
    splits = {
        s: {"x": e.x.cpu(), "y": e.y.cpu(), "seconds": e.seconds, "made_on": e.made_on}
        for s, e in entries.items()
    }
    try:
        with atomic.replacing(path) as tmp, open(tmp, "wb") as f:  # closed at once on failure
            torch.save({"version": VERSION, "splits": splits}, f)
    except (OSError, RuntimeError) as exc:
        problem = atomic.disk_problem(exc)
        if problem is None:
            raise
        size = sum(v[k].numel() * v[k].element_size() for v in splits.values() for k in "xy")
        log.warning(
            "The feature cache could not be written to %s: %s (it needs about %.0f MB). This "
            "run goes on with the features in memory; later runs will compute them again. Fix: "
            "free space there, or set paths.cache_dir to a folder on a disk with room, or "
            "strategy.cache_features=false.",
            path.parent,
            problem,
            size / 2**20,
        )
        return
    log.info("feature cache written: %s", path)
