"""`CachedFeatures`: the DataModule of cached head inputs that stands in for the image
DataModule they came from (built by `tlbench.training.feature_cache.prepare`).
"""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader

from tlbench.data.loading import IndexBatches, as_is

# Batches per Lightning step on cached features. A linear head's step costs microseconds and
# Lightning's own per-step work milliseconds, so one step per slice of 128 batches: an epoch of
# 45,000 CIFAR-10 features at batch 32 is 11 Lightning steps instead of 1,407.
SLICE_BATCHES = 128


class CachedFeatures(L.LightningDataModule):
    """A DataModule of cached head inputs, standing in for the image DataModule it came from.

    Interface (all that training, callbacks and the summary read from it):
      num_classes, class_names, preprocess, batch_size, name -- copied from the image DataModule;
      pixels   -- that image DataModule itself (e.g. the prediction grids show its images: the
                  eval loaders here are unshuffled, so batch k holds its items k*B onwards);
      features -- {split: (head inputs, labels)}, kept on the training device: each step
                  takes a slice of SLICE_BATCHES batches in place (no host copy, no collate).
    The module is told separately, by `TransferModule.use_cached_features()`, to run its head only.

    `extract_seconds`: {split: what computing its features cost} when they were computed (stored
    in the cache file), so a run's cost is the same whether its features came from the cache or
    not; `fit_seconds` counts train and val (what fitting needs; the test split's share is test
    cost, as evaluating the test set is for any run). `hit`: whether they came from the cache.
    `wait_seconds`: how long this job waited for another one extracting the same features (not a
    cost of this run: its cost is the extraction's, as on any hit). `made_on`: {split: where its
    features were extracted}; `elsewhere`: those of train/val made on other hardware than `here`,
    whose stored time is not this run's cost. `extracted`: {split: images this process computed}.
    `completion`: what the cache lacked, extracted in `setup` under DDP (training.feature_shard).

    `limits` ({split: trainer.limit_<split>_batches}) count image batches, as they do for the
    image DataModule: val and test keep exactly the images its unshuffled loaders would yield
    under the limit (the cached loaders' slices would otherwise make `limit_test_batches=64`
    mean 64 slices, i.e. every test image), so cached and uncached runs test the same images.
    """

    def __init__(
        self,
        pixels,
        features: dict[str, tuple[torch.Tensor, torch.Tensor]],
        limits: dict | None = None,
        extract_seconds: dict[str, float] | None = None,
        hit: bool = False,
        wait_seconds: float = 0.0,
        *,
        made_on: dict[str, str] | None = None,
        here: str = "",
        extracted: dict[str, int] | None = None,
        completion=None,
    ) -> None:
        super().__init__()
        self.pixels, self.hit, self.wait_seconds = pixels, hit, wait_seconds
        self.extract_seconds = dict(extract_seconds or {})
        self.made_on, self.extracted = dict(made_on or {}), dict(extracted or {})
        # A split extracted on other hardware (feature_store.made_on) did not cost this run its
        # stored time: only what was made on this kind of machine counts as this run's cost.
        self.elsewhere = {s: m for s, m in self.made_on.items() if m != here and s != "test"}
        self.fit_seconds = sum(
            v for s, v in self.extract_seconds.items() if s != "test" and s not in self.elsewhere
        )
        self.num_classes, self.class_names = pixels.num_classes, list(pixels.class_names)
        self.preprocess, self.batch_size = pixels.preprocess, pixels.batch_size
        self.name = getattr(pixels, "name", type(pixels).__name__)
        self.completion = completion
        self.features = {
            split: _limited(x, y, (limits or {}).get(split), self.batch_size)
            for split, (x, y) in features.items()
        }

    def setup(self, stage: str) -> None:
        """Under DDP, what the cache lacked is extracted here, inside fit, where the process
        group exists: each rank its shard, shared by all (training.feature_shard). It happens
        once; `extracted` then says how many images this rank computed."""
        if self.completion is None or self.trainer is None:
            return
        done = self.completion.run(self.trainer)
        self.extracted.update(self.completion.extracted)
        self.completion = None
        self.features.update(done)  # already cut to the images the run uses

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        """Slices of SLICE_BATCHES batches: the module trains on each slice batch by batch
        (TransferModule.use_cached_features), in the shuffled order a batch loader would use."""
        x, y = self.features[split]
        return DataLoader(
            IndexBatches(x, y),
            batch_size=self.batch_size * SLICE_BATCHES,
            shuffle=shuffle,
            collate_fn=as_is,
        )

    def train_dataloader(self):
        return self._loader("train", True)

    def val_dataloader(self):
        return self._loader("val", False)

    def test_dataloader(self):
        return self._loader("test", False)


def unlimited(limit) -> bool:
    """Lightning's default (1.0, or None here): every batch. The int 1 is one batch."""
    return limit is None or (isinstance(limit, float) and limit >= 1.0)


def limited_count(n: int, limit, batch_size: int) -> int:
    """How many of `n` items an unshuffled loader of `batch_size` yields under a Lightning
    batch limit: an int counts batches, a float is a share of them (int(share * batches))."""
    if unlimited(limit):
        return n
    batches = -(-n // batch_size)
    keep = int(limit) if isinstance(limit, int) else int(limit * batches)
    return min(n, keep * batch_size)


def _limited(x: torch.Tensor, y: torch.Tensor, limit, batch_size: int):
    """The first items such a loader yields (limited_count)."""
    n = limited_count(len(y), limit, batch_size)
    return (x, y) if n == len(y) else (x[:n], y[:n])
