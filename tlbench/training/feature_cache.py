"""Frozen-feature caching: a frozen, deterministic backbone needs to run only once per image.

When only the head trains (`Plan.head_only`) and the head's input is deterministic -- no random
augmentation, the backbone in eval mode -- the head's inputs are computed once per split, stored
under `paths.cache_dir`, and every epoch trains the head on them. The cache key is a hash of
everything the features depend on: the backbone's actual weights (not its name), the preprocessing,
the precision, and the exact images of every split (tensor bytes, or path/size/mtime of files),
so a stale cache is never used.

`strategy.cache_features`: auto (on when safe, a log line says why or why not), true (also turns
training augmentation off for the cached run), false.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from tlbench.data.transforms import is_random
from tlbench.training.device import autocast

log = logging.getLogger("tlbench")
FORMAT_VERSION = 1  # bump when what is stored changes


def decide(setting, module, datamodule) -> tuple[bool, str]:
    """Whether to cache, and the reason (logged and stored in summary.json)."""
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


@torch.inference_mode()
def extract(module, datamodule, split: str, precision: str, device: torch.device) -> TensorDataset:
    """Head inputs for every image of `split` (eval transform: deterministic)."""
    head = module.net.get_submodule(module.head_names[0])
    captured: list[torch.Tensor] = []
    handle = head.register_forward_pre_hook(lambda _m, args: captured.append(args[0].detach()))
    feats, labels = [], []
    was_training = module.training
    module.eval()
    try:
        loader = DataLoader(
            datamodule.dataset(split, train=False),
            batch_size=max(datamodule.batch_size, 64),
            shuffle=False,
            **datamodule.loader_settings(),
        )
        for x, y in loader:
            x = x.to(device)
            if module.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(precision, device.type):
                out = module.net(x)
            f = captured.pop()
            if (
                not feats
            ):  # the head must be the network's last step, or caching would change results
                with autocast(precision, device.type):
                    again = head(f)
                if not torch.allclose(again.float(), out.float(), atol=1e-3, rtol=1e-3):
                    raise RuntimeError("head is not the last operation of the network")
            feats.append(f.cpu())
            labels.append(y)
    finally:
        handle.remove()
        module.train(was_training)
    return TensorDataset(torch.cat(feats), torch.cat(labels))


class CachedFeatures(L.LightningDataModule):
    """Serves cached head inputs in place of images; anything else is asked of the source."""

    def __init__(self, source, datasets: dict[str, TensorDataset]) -> None:
        super().__init__()
        self.source, self.datasets = source, datasets

    def __getattr__(self, name):
        if name in ("source", "datasets") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.source, name)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(self.datasets[split], batch_size=self.source.batch_size, shuffle=shuffle)

    def train_dataloader(self):
        return self._loader("train", True)

    def val_dataloader(self):
        return self._loader("val", False)

    def test_dataloader(self):
        return self._loader("test", False)


def prepare(module, datamodule, cache_dir: str | Path, precision: str, device: torch.device):
    """Load or compute the features of every split; returns (CachedFeatures, seconds, path) or
    (None, seconds, reason) when the network does not allow caching."""
    start = time.perf_counter()
    key = cache_key(module, datamodule, precision)
    path = Path(cache_dir) / f"{key}.pt"
    if path.is_file():
        stored = torch.load(path, map_location="cpu", weights_only=True)
        datasets = {s: TensorDataset(v["x"], v["y"]) for s, v in stored.items()}
        log.info("feature cache hit: %s", path)
    else:
        module.to(device)
        try:
            # Creating a DataLoader iterator draws from the global RNG; fork it so a cache miss and
            # a cache hit train with the same shuffling.
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                datasets = {
                    s: extract(module, datamodule, s, precision, device) for s in datamodule.splits
                }
        except RuntimeError as exc:
            return None, time.perf_counter() - start, f"feature caching off: {exc}"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save({s: {"x": d.tensors[0], "y": d.tensors[1]} for s, d in datasets.items()}, tmp)
        os.replace(tmp, path)  # a crash mid-write never leaves a truncated cache behind
        log.info("feature cache written: %s", path)
    return CachedFeatures(datamodule, datasets), time.perf_counter() - start, str(path)
