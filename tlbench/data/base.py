"""Shared DataModule machinery: splits, class subsets, label budgets, transforms, loaders.

A concrete DataModule only says how to read its splits (`load_splits`) and how to turn one item
into a uint8 CHW tensor (`read`). Everything else -- class selection, stratified seeded splits,
nested label budgets, preprocessing from the backbone -- lives here once.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from tlbench.data import transforms
from tlbench.errors import TlbenchError
from tlbench.preprocess import Preprocess


@dataclass
class Split:
    items: Sequence  # a uint8 tensor (N, C, H, W) or a list of file paths
    targets: np.ndarray  # int64 class indices

    def take(self, idx: np.ndarray) -> Split:
        items = self.items[torch.as_tensor(idx)] if isinstance(self.items, torch.Tensor) else [self.items[i] for i in idx]
        return Split(items, self.targets[idx])


class ImageDataset(Dataset):
    def __init__(self, split: Split, read, transform) -> None:
        self.split, self.read, self.transform = split, read, transform

    def __len__(self) -> int:
        return len(self.split.targets)

    def __getitem__(self, i: int):
        return self.transform(self.read(self.split.items[i])), int(self.split.targets[i])


def stratified_split(targets: np.ndarray, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Split indices per class into consecutive parts of the given fractions (seeded)."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in fractions]
    for c in np.unique(targets):
        idx = rng.permutation(np.flatnonzero(targets == c))
        bounds = np.round(np.cumsum(fractions) * len(idx)).astype(int)
        for k, (lo, hi) in enumerate(zip([0, *bounds[:-1]], bounds)):
            parts[k] += idx[lo:hi].tolist()
    return [np.sort(np.array(p, dtype=np.int64)) for p in parts]


def budget_indices(targets: np.ndarray, samples_per_class: int | None, train_fraction: float | None,
                   seed: int) -> np.ndarray:
    """Stratified, seeded and *nested* subsample: each class is shuffled once with `seed` and the
    first k taken, so the 10-per-class subset lies inside the 20-per-class one."""
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(targets):
        idx = rng.permutation(np.flatnonzero(targets == c))
        if samples_per_class is not None:
            if samples_per_class > len(idx):
                raise TlbenchError(
                    f"class {int(c)} has only {len(idx)} training images", key="data.samples_per_class",
                    value=samples_per_class, allowed=f"1..{int(np.bincount(targets).min())} for this dataset",
                    fix="lower data.samples_per_class or use data.train_fraction")
            k = samples_per_class
        else:
            k = max(1, int(round(train_fraction * len(idx))))
        chosen += idx[:k].tolist()
    return np.sort(np.array(chosen, dtype=np.int64))


class BaseDataModule(L.LightningDataModule):
    in_memory = True  # tensors in RAM: worker processes cost more than they save

    def __init__(
        self,
        name: str | None = None,
        batch_size: int = 64,
        image_size: int | None = None,
        augment: str = "none",
        preprocess: dict | Preprocess | None = None,
        classes: list[str] | None = None,
        samples_per_class: int | None = None,
        train_fraction: float | None = None,
        subset_seed: int = 0,
        num_workers: int | str = "auto",
        pin_memory: bool | str = "auto",
    ) -> None:
        super().__init__()
        self.name = name or type(self).__name__
        self.batch_size, self.image_size, self.augment = batch_size, image_size, augment
        pre = Preprocess.from_dict(preprocess) if isinstance(preprocess, dict) else (preprocess or Preprocess())
        self.preprocess = pre.at_size(image_size)
        self.classes, self.subset_seed = classes, subset_seed
        self.samples_per_class, self.train_fraction = samples_per_class, train_fraction
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.splits: dict[str, Split] = {}
        self.class_names: list[str] = []

    # -- to implement --------------------------------------------------------------------------
    def load_splits(self) -> tuple[dict[str, Split], list[str]]:
        """Return {'train','val','test'} splits and the class names (index order)."""
        raise NotImplementedError

    def read(self, item) -> torch.Tensor:
        """One item -> uint8 tensor (C, H, W). Tensor-backed datasets hold it already."""
        return item

    # -- shared ----------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        if not self.class_names:
            self.setup()
        return len(self.class_names)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        splits, names = self.load_splits()
        if self.classes:
            splits, names = self._select_classes(splits, names)
        if self.samples_per_class is not None or self.train_fraction is not None:
            train = splits["train"]
            splits["train"] = train.take(budget_indices(train.targets, self.samples_per_class,
                                                        self.train_fraction, self.subset_seed))
        self.splits, self.class_names = splits, names

    def _select_classes(self, splits: dict[str, Split], names: list[str]):
        unknown = [c for c in self.classes if c not in names]
        if unknown:
            raise TlbenchError(f"unknown class name(s) {unknown}", key="data.classes", value=list(self.classes),
                               allowed=", ".join(names), fix="use class names exactly as listed")
        keep = [names.index(c) for c in self.classes]
        remap = {old: new for new, old in enumerate(keep)}
        out = {}
        for name, split in splits.items():
            idx = np.flatnonzero(np.isin(split.targets, keep))
            sub = split.take(idx)
            out[name] = Split(sub.items, np.array([remap[t] for t in sub.targets], dtype=np.int64))
        return out, list(self.classes)

    def dataset(self, split: str, train: bool | None = None) -> ImageDataset:
        self.setup()
        train = split == "train" if train is None else train
        return ImageDataset(self.splits[split], self.read, transforms.build(self.preprocess, self.augment, train))

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        workers = (0 if self.in_memory else min(4, os.cpu_count() or 1)) if self.num_workers == "auto" else int(self.num_workers)
        pin = torch.cuda.is_available() if self.pin_memory == "auto" else bool(self.pin_memory)
        return DataLoader(self.dataset(split), batch_size=self.batch_size, shuffle=shuffle, num_workers=workers,
                          pin_memory=pin, persistent_workers=workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def sizes(self) -> dict[str, int]:
        self.setup()
        return {k: len(v.targets) for k, v in self.splits.items()}
