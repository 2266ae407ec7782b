"""How images reach the model: the one DataLoader worker policy and the two dataset shapes.

`ImageDataset` reads and transforms one file per item (in worker processes); `IndexBatches`
serves in-memory uint8 tensors a whole batch per index list, transformed on the device
(`tlbench.data.batched`). `loader_settings` is the only place that picks worker counts
(training, feature extraction, evaluate and predict ask it): 0 workers for in-memory data,
min(4, usable CPUs) for files, one torch thread each. Why: docs/architecture.md, "Input pipeline".
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from tlbench.config.data_values import MAX_AUTO_WORKERS, check_workers, usable_cpus  # noqa: F401 (the rule is config's)


def worker_count(num_workers, in_memory: bool, batches: int | None = None) -> int:
    """`num_workers` as set, or for auto: 0 for in-memory data or a single batch (a worker costs
    about a second to start), else min(4, usable CPUs)."""
    check_workers(num_workers)
    if num_workers != "auto":
        return int(num_workers)
    if in_memory or (batches is not None and batches <= 1):
        return 0
    return min(MAX_AUTO_WORKERS, usable_cpus())


def one_thread_per_worker(worker_id: int) -> None:
    """DataLoader worker_init_fn: a worker decodes and resizes one image at a time, and torch's
    intra-op pool (one thread per core by default) would make 4 workers run 4 x cores threads on
    the same cores."""
    torch.set_num_threads(1)


def loader_settings(
    num_workers, in_memory: bool, pin_memory="auto", persistent_workers="auto"
) -> dict:
    """DataLoader keyword arguments under the policy in the module docstring."""
    workers = worker_count(num_workers, in_memory)
    pin = torch.cuda.is_available() if pin_memory == "auto" else bool(pin_memory)
    persistent = workers > 0 if persistent_workers == "auto" else bool(persistent_workers)
    out = {
        "num_workers": workers,
        "pin_memory": pin,
        "persistent_workers": persistent and workers > 0,
    }
    if workers > 0:
        out["worker_init_fn"] = one_thread_per_worker
    return out


class ImageDataset(Dataset):
    """(transform(read(item)), label) per index: the per-sample path."""

    def __init__(self, split, read, transform) -> None:
        self.split, self.read, self.transform = split, read, transform

    def __len__(self) -> int:
        return len(self.split.targets)

    def __getitem__(self, i: int):
        return self.transform(self.read(self.split.items[i])), int(self.split.targets[i])


class IndexBatches(Dataset):
    """A uint8 (N, C, H, W) tensor and its labels, fetched a batch at a time: the DataLoader's
    batch sampler hands `__getitems__` the index list and `as_is` passes the result through."""

    def __init__(self, images: torch.Tensor, targets) -> None:
        self.images = images
        self.targets = torch.as_tensor(targets, dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        return self.images[i], self.targets[i]

    def __getitems__(self, indices: list[int]):
        idx = torch.as_tensor(indices, dtype=torch.int64)
        return self.images[idx], self.targets[idx]


def as_is(batch):
    """collate_fn for `IndexBatches`: the batch is already one (images, labels) pair."""
    return batch
