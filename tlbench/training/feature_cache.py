"""Frozen-feature caching: a frozen, deterministic backbone needs to run only once per image.

When only the head trains (`Plan.head_only`) and the head's input is deterministic -- no random
augmentation, the backbone in eval mode -- the head's inputs are computed once per split, stored
under `paths.cache_dir`, and every epoch trains the head on them. The cache key is a hash of
everything the features depend on: the backbone's actual weights (not its name), the preprocessing,
the precision, and the exact images of every split (tensor bytes, or path/size/mtime of files),
so a stale cache is never used.

`strategy.cache_features`: auto (on when safe, a log line says why or why not), true (also turns
training augmentation off for the cached run), false. Concurrent jobs that need the same features
extract them once: training.cache_claim (the others wait, then read the cache).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
from pathlib import Path

import torch

from tlbench import atomic
from tlbench.data.transforms import is_random
from tlbench.models import outputs
from tlbench.training import cache_claim
from tlbench.training.cached_features import CachedFeatures, unlimited
from tlbench.training.device import autocast

log = logging.getLogger("tlbench")
FORMAT_VERSION = 2  # bump when what is stored changes (2: each split's extraction time too)


def _setting(setting) -> str:
    setting = str(setting).lower() if setting is not None else "false"
    if setting not in ("auto", "true", "false"):
        from tlbench.errors import TlbenchError

        raise TlbenchError(
            "not a cache setting",
            key="strategy.cache_features",
            value=setting,
            allowed="auto, true, false",
            fix="e.g. strategy.cache_features=auto",
        )
    return setting


def decide(setting, module, datamodule, limits: dict | None = None) -> tuple[bool, str]:
    """Whether to cache, and the reason (logged and stored in summary.json). `limits`: the
    trainer's limit_{train,val,test}_batches, counted in image batches (see CachedFeatures)."""
    setting = _setting(setting)
    if setting == "false":
        return False, "feature caching off (strategy.cache_features=false)"
    if not module.plan.head_only:
        return (
            False,
            "feature caching off: layers below the head train, so features change every step",
        )
    if len(module.head_names) != 1:
        return (
            False,
            f"feature caching off: the model has auxiliary heads ({module.head_names[1:]})",
        )
    if module.hparams.strategy.get("schedule"):
        return False, "feature caching off: the freeze schedule unfreezes the backbone later"
    if not hasattr(datamodule, "splits"):
        return False, "feature caching off: the datamodule does not expose its splits"
    if not unlimited((limits or {}).get("train")):
        # A limit on shuffled training batches draws other images every epoch; cached slices
        # of 128 batches cannot follow that, so the images are used as they are.
        return False, (
            f"feature caching off: trainer.limit_train_batches={limits['train']} counts image "
            "batches, which cached slices cannot follow"
        )
    if is_random(datamodule.augment):
        if setting == "auto":
            return False, (
                f"feature caching off: data.augment={datamodule.augment} makes every epoch's "
                "features different (strategy.cache_features=true caches without augmentation)"
            )
        return (
            True,
            f"feature caching on: backbone frozen; data.augment={datamodule.augment} turned off for caching",
        )
    return (
        True,
        "feature caching on: backbone frozen and inputs deterministic; later epochs train the head only",
    )


def _hash_split(h, split) -> None:
    items = split.items
    if isinstance(items, torch.Tensor):
        h.update(items.contiguous().numpy().tobytes())
    else:
        for p in items:
            st = os.stat(p)
            h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}".encode())
    h.update(split.targets.tobytes())


def cache_key(module, datamodule, precision: str) -> str:
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
        "v": FORMAT_VERSION,
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


# Extraction batch: no gradients are kept, so on a GPU the largest batch that fits is fastest
# (fewer launches, full occupancy); start high and halve on out-of-memory. On a CPU big batches
# buy nothing beyond a few hundred images and only cost RAM.
FIRST_BATCH = {"cuda": 1024, "cpu": 256}


class NotCacheable(RuntimeError):
    """This network's head input cannot stand in for its images (the run trains uncached)."""


def extract(module, datamodule, split: str, precision: str, device: torch.device, stop=None):
    """Head inputs (on `device`) and labels for every image of `split`, eval transform, at the
    largest batch that fits (halving from FIRST_BATCH on CUDA out-of-memory). `stop()` runs
    before every batch: a SIGINT/SIGTERM stops extraction there (runtime.signals.Trap.check)."""
    batch = FIRST_BATCH.get(device.type, 256)
    while True:
        try:
            return _extract(module, datamodule, split, precision, device, batch, stop)
        except torch.cuda.OutOfMemoryError:
            if batch <= 1:
                raise
            batch //= 2
            torch.cuda.empty_cache()
            log.info("feature extraction: out of memory, retrying %s at batch %d", split, batch)


@torch.inference_mode()
def _extract(module, datamodule, split, precision, device, batch_size, stop=None):
    head = module.net.get_submodule(module.head_names[0])
    captured: list[torch.Tensor] = []
    handle = head.register_forward_pre_hook(lambda _m, args: captured.append(args[0].detach()))
    feats, labels = [], []
    was_training = module.training
    module.eval()
    try:
        for x, y in datamodule.batches(split, device, train=False, batch_size=batch_size):
            if stop is not None:
                stop(f" during feature extraction ({split}, batch {len(feats) + 1})")
            if module.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(precision, device.type):
                out = outputs.logits(module.net(x))
            f = captured.pop()
            if not feats:  # the head must be the network's last step, or caching changes results
                with autocast(precision, device.type):
                    again = head(f)
                if not torch.allclose(again.float(), out.float(), atol=1e-3, rtol=1e-3):
                    raise NotCacheable("head is not the last operation of the network")
            feats.append(f)
            labels.append(y.to(device))
    finally:
        handle.remove()
        module.train(was_training)
    with torch.inference_mode(False):  # inference tensors cannot enter autograd: clone outside
        return torch.cat(feats).clone(), torch.cat(labels).clone()


def _load(path: Path, device: torch.device) -> tuple[dict, dict] | None:
    """The cached features and the seconds their extraction took, or None when the file cannot
    be read (truncated, corrupt, another format): it is then named in a warning, moved aside to
    `<file>.corrupt` and rebuilt, so one bad file never fails every later run."""
    try:
        stored = torch.load(path, map_location=device, weights_only=True)
        splits = {s: (v["x"], v["y"]) for s, v in stored["splits"].items()}
        return splits, {s: float(v) for s, v in stored["extract_seconds"].items()}
    except FileNotFoundError:  # moved aside by another job since it was seen
        return None
    except Exception as exc:  # torch.load raises RuntimeError, UnpicklingError, EOFError, ...
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


def _remove_orphans(folder: Path) -> None:
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


def _store(path: Path, features: dict, extract_seconds: dict) -> None:
    """Write the cache beside, then rename (tlbench.atomic): a kill or a full disk mid-write
    leaves no truncated cache. A disk that refuses it is a warning, not a failed run: this run
    trains on the features in memory; only later runs lose the cache."""
    _remove_orphans(path.parent)
    splits = {s: {"x": x.cpu(), "y": y.cpu()} for s, (x, y) in features.items()}
    try:
        with atomic.replacing(path) as tmp, open(tmp, "wb") as f:  # closed at once on failure
            torch.save({"splits": splits, "extract_seconds": extract_seconds}, f)
    except (OSError, RuntimeError) as exc:
        problem = atomic.disk_problem(exc)
        if problem is None:
            raise
        size = sum(x.numel() * x.element_size() for v in splits.values() for x in v.values())
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


def prepare(module, datamodule, cache_dir, precision: str, device, limits=None, stop=None):
    """Load or compute the features of every split; returns (CachedFeatures, seconds, path) or
    (None, seconds, reason) when the network does not allow caching. The cache holds every
    image; `limits` (see CachedFeatures) only choose which of them a run evaluates. `seconds`:
    loading or computing, not the wait for another job's extraction (CachedFeatures.wait_seconds)."""
    start = time.perf_counter()
    path = Path(cache_dir) / f"{cache_key(module, datamodule, precision)}.pt"
    try:
        features, extract_seconds, hit, waited = _obtain(
            path, module, datamodule, precision, device, stop
        )
    # Only these turn caching off; any other error (a CUDA fault, a bug) fails the run with
    # its traceback instead of silently training uncached.
    except (NotCacheable, torch.cuda.OutOfMemoryError) as exc:
        return None, time.perf_counter() - start, f"feature caching off: {exc}"
    cached = CachedFeatures(datamodule, features, limits, extract_seconds, hit, waited)
    return cached, time.perf_counter() - start - waited, str(path)


def _obtain(path: Path, module, datamodule, precision, device, stop):
    """(features, extract_seconds, hit, seconds waited). A cache file is only ever renamed into
    place whole, so one that is there is read at once; a missing one is extracted under the
    key's claim (training.cache_claim), where a job that waited finds it written."""
    loaded = _load(path, device) if path.is_file() else None
    if loaded is not None:
        log.info("feature cache hit: %s", path)
        return *loaded, True, 0.0
    with cache_claim.claim(path.with_suffix(".lock"), stop) as waited:
        loaded = _load(path, device) if path.is_file() else None
        if loaded is not None:
            log.info("feature cache hit: %s (written meanwhile by another job)", path)
            return *loaded, True, waited
        if waited:
            log.info("the job that held the claim left no cache (killed?); extracting here")
        module.to(device)
        # Creating a DataLoader iterator draws from the global RNG; fork it so a cache miss and
        # a cache hit train with the same shuffling.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            features, extract_seconds = {}, {}
            for s in datamodule.splits:
                split_start = time.perf_counter()
                features[s] = extract(module, datamodule, s, precision, device, stop)
                extract_seconds[s] = time.perf_counter() - split_start
        _store(path, features, extract_seconds)
    return features, extract_seconds, False, waited
