"""How images reach the model: the one DataLoader worker policy and the two dataset shapes.

- `ImageDataset`: one item at a time, read + transformed per sample. Used for image *files*,
  whose decoding must run in DataLoader worker processes anyway.
- `IndexBatches`: in-memory uint8 tensors served a whole batch per index list (the DataLoader's
  sampler still shuffles; `__getitems__` slices the tensor once), so no per-sample Python runs
  and no collate stacks thousands of tiny tensors. The batch reaches the device as uint8 (4x less
  to copy than float) and is transformed there (`tlbench.data.batched`).

Worker policy (`loader_settings`), the only place that picks worker counts -- training,
feature extraction, evaluate and predict ask it:
- in-memory data: 0 workers (the batch is one tensor slice; a worker would only copy it);
- files: min(4, usable CPUs) workers; more than 4 rarely pays on a desktop, and each worker runs
  one torch thread (`one_thread_per_worker`) so that N workers never start N x cores threads;
- pinned memory only with CUDA; persistent workers whenever there are workers (re-forking them
  every epoch costs about a second each).
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from tlbench.config.data_values import MAX_AUTO_WORKERS, check_workers, usable_cpus  # noqa: F401 (the rule is config's)


def worker_count(num_workers, in_memory: bool, batches: int | None = None) -> int:
    """`num_workers` as set, or for auto: 0 for in-memory data or a single batch (a worker costs
    ~1 s to start), else min(4, usable CPUs)."""
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
