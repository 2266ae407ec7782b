"""Frozen-feature caching: a frozen, deterministic backbone needs to run only once per image.

When only the head trains and its input is deterministic, the head's inputs are computed once
per split, stored under `paths.cache_dir` (keyed by everything they depend on: feature_store),
and every epoch trains the head on them. A run extracts only what it uses; concurrent jobs
extract once (training.cache_claim); DDP ranks share shards (training.feature_shard).
`strategy.cache_features`: auto | true | false. Why: docs/architecture.md, "Feature cache".
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path

import numpy as np
import torch

from tlbench.data.transforms import is_random
from tlbench.training import cache_claim, feature_store
from tlbench.training.cached_features import CachedFeatures, limited_count, unlimited
from tlbench.training.device import autocast
from tlbench.training.feature_store import Entry, cache_key

log = logging.getLogger("tlbench")


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


# Extraction batch: no gradients are kept, so on a GPU the largest batch that fits is fastest
# (fewer launches, full occupancy); start high and halve on out-of-memory. On a CPU big batches
# buy nothing beyond a few hundred images and only cost RAM.
FIRST_BATCH = {"cuda": 1024, "cpu": 256}


class NotCacheable(RuntimeError):
    """This network's head input cannot stand in for its images (the run trains uncached)."""


def extract(module, datamodule, split, precision, device, stop=None, images=None):
    """Head inputs (on `device`) and labels for the images `images` (a range; default: all) of
    `split` in its unshuffled order, eval transform, at the largest batch that fits (halving
    from FIRST_BATCH on CUDA out-of-memory). `stop()` runs before every batch: a SIGINT/SIGTERM
    stops extraction there (runtime.signals.Trap.check)."""
    batch = FIRST_BATCH.get(device.type, 256)
    part = _part(datamodule, split, images)
    while True:
        try:
            return _extract(module, part, split, precision, device, batch, stop)
        except torch.cuda.OutOfMemoryError:
            if batch <= 1:
                raise
            batch //= 2
            torch.cuda.empty_cache()
            log.info("feature extraction: out of memory, retrying %s at batch %d", split, batch)


def _part(datamodule, split: str, images: range | None):
    """`datamodule` itself, or a shallow copy whose `split` holds only `images` (its loaders and
    transforms are the same: only the images differ), so only they are read and computed."""
    full = len(datamodule.splits[split].targets)
    if images is None or (images.start, images.stop) == (0, full):
        return datamodule
    view = copy.copy(datamodule)
    view.splits = {**datamodule.splits, split: datamodule.splits[split].take(np.asarray(images))}
    return view


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
            out = module.logits_in(x, precision)  # the head's input is captured by the hook
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


def wanted(datamodule, limits: dict | None = None, test: bool = True) -> dict[str, int]:
    """How many images of each split the run uses, a prefix of its unshuffled order: all of
    train; val and test as far as `limit_{val,test}_batches` reach (counted in image batches, as
    CachedFeatures does); no test images (0) when the run does not test."""
    out = {}
    for split, data in datamodule.splits.items():
        full = len(data.targets)
        limit = None if split == "train" else (limits or {}).get(split)
        n = limited_count(full, limit, datamodule.batch_size)
        if split == "test":
            out[split] = n if test else 0
        else:  # a val limit of 0 (no validation) still caches val: Lightning may build its loader
            out[split] = n or full
    return out


def prepare(
    module, datamodule, cache_dir, precision, device, limits=None, stop=None, test=True, ranks=1
):
    """Load or compute the features the run uses (`wanted`); returns (CachedFeatures, seconds,
    path) or (None, seconds, reason) when the network does not allow caching. `limits` (see
    CachedFeatures) choose the images a run evaluates; `test=False`: the run does not test.
    `ranks` > 1: DDP is expected, so what the cache lacks is extracted inside fit, each rank its
    shard (feature_shard). `seconds`: loading or computing, not the wait for another job's
    extraction (CachedFeatures.wait_seconds)."""
    start = time.perf_counter()
    path = Path(cache_dir) / f"{cache_key(module, datamodule, precision, device)}.pt"
    need = wanted(datamodule, limits, test)
    try:
        entries, extracted, waited = obtain(
            path, module, datamodule, precision, device, stop, need, ranks
        )
    # Only these turn caching off; any other error (a CUDA fault, a bug) fails the run with
    # its traceback instead of silently training uncached.
    except (NotCacheable, torch.cuda.OutOfMemoryError) as exc:
        return None, time.perf_counter() - start, f"feature caching off: {exc}"
    pending, completion = missing_images(entries, need), None
    if pending or ranks > 1:  # every rank joins in, even one that found it all (feature_shard)
        from tlbench.training.feature_shard import ShardedExtraction

        completion = ShardedExtraction(
            module, datamodule, path, (need, pending), precision, device, stop
        )
    used = {s: e for s, e in entries.items() if need.get(s) and s not in pending}
    cached = CachedFeatures(  # each split cut to the images the run uses (`wanted`)
        datamodule,
        {s: (e.x[: need[s]], e.y[: need[s]]) for s, e in used.items()},
        None,
        {s: e.seconds for s, e in used.items()},
        hit=not extracted and not pending,
        wait_seconds=waited,
        made_on={s: e.made_on for s, e in used.items()},
        here=feature_store.made_on(device),
        extracted=extracted,
        completion=completion,
    )
    for s, where in cached.elsewhere.items():
        log.info(
            "feature cache: the %s features were extracted on %s (%.1f s there), not on this "
            "machine's hardware: that time is not counted as this run's cost",
            s, where, cached.extract_seconds[s],
        )  # fmt: skip
    return cached, time.perf_counter() - start - waited, str(path)


def missing_images(entries: dict[str, Entry] | None, need: dict[str, int]) -> dict[str, int]:
    """{split: images to extract} for what `need` asks and `entries` lack (or hold too few of)."""
    have = entries or {}
    return {s: n for s, n in need.items() if n and (s not in have or len(have[s].y) < n)}


def read(path: Path, device) -> dict[str, Entry] | None:
    return feature_store.load(path, device) if path.is_file() else None


def obtain(path: Path, module, datamodule, precision, device, stop, need, ranks=1):
    """(entries, {split: images extracted here}, seconds waited). A cache file is only ever
    renamed into place whole, so one that is there is read at once; what it lacks is extracted
    under the key's claim (training.cache_claim), where a job that waited finds it written.
    Expecting DDP, only the first training batch is extracted here, to check the network
    allows caching before fit; the ranks extract the rest (`prepare`)."""
    entries = read(path, device)
    if not missing_images(entries, need):
        log.info("feature cache hit: %s", path)
        return entries, {}, 0.0
    if ranks > 1:  # one image: NotCacheable now, while the run can still train uncached
        module.to(device)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            extract(module, datamodule, "train", precision, device, stop, range(1))
        return entries or {}, {}, 0.0
    with cache_claim.claim(path.with_suffix(".lock"), stop) as waited:
        entries = read(path, device)
        missing = missing_images(entries, need)
        if not missing:
            log.info("feature cache hit: %s (written meanwhile by another job)", path)
            return entries, {}, waited
        if waited and entries is None:
            log.info("the job that held the claim left no cache (killed?); extracting here")
        entries = {
            **(entries or {}),
            **_extract_missing(module, datamodule, missing, precision, device, stop),
        }
        feature_store.store(path, entries)
    return entries, missing, waited


def _extract_missing(module, datamodule, missing: dict[str, int], precision, device, stop):
    """{split: Entry} of the first `missing[split]` images of each split, extracted here."""
    module.to(device)
    here, entries = feature_store.made_on(device), {}
    # Creating a DataLoader iterator draws from the global RNG; fork it so a cache miss and
    # a cache hit train with the same shuffling.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for s, n in missing.items():
            full = len(datamodule.splits[s].targets)
            log.info("feature extraction: %s, %d of %d images", s, n, full)
            split_start = time.perf_counter()
            x, y = extract(module, datamodule, s, precision, device, stop, range(n))
            entries[s] = Entry(x, y, time.perf_counter() - split_start, here)
    return entries
