"""Shared DataModule machinery: splits, class subsets, label budgets, transforms, loaders.

A concrete DataModule only says how to read its splits (`load_splits`) and how to turn one item
into a uint8 CHW tensor (`read`). Everything else -- class selection, stratified seeded splits,
nested label budgets, preprocessing from the backbone -- lives here once.
"""

from __future__ import annotations

import logging
import os
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from tlbench.data import transforms
from tlbench.errors import TlbenchError, one_of
from tlbench.preprocess import Preprocess

log = logging.getLogger("tlbench")


def nfc(name: str) -> str:
    """Class names compare in Unicode NFC: macOS writes folder names decomposed (NFD), a
    keyboard types them composed, and both must select the same class."""
    return unicodedata.normalize("NFC", str(name))


def usable_cpus() -> int:
    """CPUs this process may run on (respects taskset/cgroup affinity, unlike os.cpu_count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@dataclass
class Split:
    items: Sequence  # a uint8 tensor (N, C, H, W) or a list of file paths
    targets: np.ndarray  # int64 class indices

    def take(self, idx: np.ndarray) -> Split:
        items = (
            self.items[torch.as_tensor(idx)]
            if isinstance(self.items, torch.Tensor)
            else [self.items[i] for i in idx]
        )
        return Split(items, self.targets[idx])


class ImageDataset(Dataset):
    def __init__(self, split: Split, read, transform) -> None:
        self.split, self.read, self.transform = split, read, transform

    def __len__(self) -> int:
        return len(self.split.targets)

    def __getitem__(self, i: int):
        return self.transform(self.read(self.split.items[i])), int(self.split.targets[i])


def stratified_split(
    targets: np.ndarray, fractions: Sequence[float], seed: int
) -> list[np.ndarray]:
    """Split indices per class into consecutive parts of the given fractions (seeded)."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in fractions]
    for c in np.unique(targets):
        idx = rng.permutation(np.flatnonzero(targets == c))
        bounds = np.round(np.cumsum(fractions) * len(idx)).astype(int)
        for k, (lo, hi) in enumerate(zip([0, *bounds[:-1]], bounds, strict=True)):
            parts[k] += idx[lo:hi].tolist()
    return [np.sort(np.array(p, dtype=np.int64)) for p in parts]


def check_fraction(key: str, value, allow_zero: bool = False) -> float:
    """A split fraction: in (0, 1) -- or [0, 1) where 0 means "no such split"."""
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    if not ok or not (0 <= value < 1 if allow_zero else 0 < value < 1):
        raise TlbenchError(
            "a split fraction must be a share of the images",
            key=key,
            value=value,
            allowed=f"a number in {'[0, 1)' if allow_zero else '(0, 1)'}",
            fix=f"e.g. {key}=0.15",
        )
    return float(value)


def carve(split: Split, fractions: dict[str, float], seed: int) -> dict[str, Split]:
    """Stratified, seeded parts of one split, e.g. {'train': .7, 'val': .15, 'test': .15}."""
    if sum(fractions.values()) > 1 + 1e-9 or min(fractions.values()) < 0:
        raise TlbenchError(
            "the split fractions add up to more than all the images",
            key="data.val_fraction",
            value=fractions,
            fix="make data.val_fraction + data.test_fraction < 1",
        )
    parts = stratified_split(split.targets, list(fractions.values()), seed)
    return {name: split.take(idx) for name, idx in zip(fractions, parts, strict=True)}


def budget_indices(
    targets: np.ndarray, samples_per_class: int | None, train_fraction: float | None, seed: int
) -> np.ndarray:
    """Stratified, seeded and *nested* subsample: each class is shuffled once with `seed` and the
    first k taken, so the 10-per-class subset lies inside the 20-per-class one, and the 10 % subset
    inside the 20 % one (k grows with the budget; the shuffle does not depend on it)."""
    check_budget(samples_per_class, train_fraction)
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(targets):
        idx = rng.permutation(np.flatnonzero(targets == c))
        if samples_per_class is not None:
            if samples_per_class > len(idx):
                raise TlbenchError(
                    f"class {int(c)} has only {len(idx)} training images",
                    key="data.samples_per_class",
                    value=samples_per_class,
                    allowed=f"1..{int(np.bincount(targets)[np.unique(targets)].min())} for this dataset",
                    fix="lower data.samples_per_class or use data.train_fraction",
                )
            k = samples_per_class
        else:
            k = max(1, int(round(train_fraction * len(idx))))
        chosen += idx[:k].tolist()
    return np.sort(np.array(chosen, dtype=np.int64))


def check_budget(samples_per_class, train_fraction) -> None:
    """A label budget is one positive count or one fraction in (0, 1], never both."""
    if samples_per_class is not None and train_fraction is not None:
        raise TlbenchError(
            "two label budgets are set; they would contradict each other",
            key="data.train_fraction",
            value=train_fraction,
            fix=f"keep one: data.samples_per_class={samples_per_class} or "
            f"data.train_fraction={train_fraction}, and set the other to null",
        )
    if samples_per_class is not None and (
        isinstance(samples_per_class, bool)
        or not isinstance(samples_per_class, (int, np.integer))
        or samples_per_class < 1
    ):
        raise TlbenchError(
            "the label budget must be a whole number of training images per class",
            key="data.samples_per_class",
            value=samples_per_class,
            allowed="an integer >= 1, or null for all images",
            fix="e.g. data.samples_per_class=10",
        )
    if train_fraction is not None and (
        isinstance(train_fraction, bool)
        or not isinstance(train_fraction, (int, float, np.floating))
        or not 0 < train_fraction <= 1
    ):
        raise TlbenchError(
            "the label budget must be a fraction of the training split",
            key="data.train_fraction",
            value=train_fraction,
            allowed="a number in (0, 1], or null for all images",
            fix="e.g. data.train_fraction=0.1 for 10 % of the training images of each class",
        )


def select_classes(
    splits: dict[str, Split], names: list[str], wanted: Sequence[str], key: str = "data.classes"
) -> tuple[dict[str, Split], list[str]]:
    """Keep the classes named in `wanted` (in that order) and renumber them 0..k-1."""
    wanted = [nfc(c) for c in wanted]
    normal = [nfc(n) for n in names]
    unknown = [c for c in wanted if c not in normal]
    if unknown:
        raise TlbenchError(
            f"unknown class name(s) {unknown}",
            key=key,
            value=list(wanted),
            allowed=", ".join(names),
            fix="use class names exactly as listed",
        )
    if len(set(wanted)) != len(wanted):
        raise TlbenchError(
            "a class is named twice", key=key, value=list(wanted), fix="list each class once"
        )
    keep = [normal.index(c) for c in wanted]
    remap = np.full(len(names), -1, dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    out, seen = {}, {}
    for split_name, split in splits.items():
        if id(split) in seen:  # one Split serving two roles (test = val) stays one object
            out[split_name] = seen[id(split)]
            continue
        sub = split.take(np.flatnonzero(np.isin(split.targets, keep)))
        out[split_name] = seen[id(split)] = Split(sub.items, remap[sub.targets])
    return out, [names[i] for i in keep]


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
        persistent_workers: bool | str = "auto",
    ) -> None:
        super().__init__()
        self.name = name or type(self).__name__
        self.batch_size, self.image_size, self.augment = batch_size, image_size, augment
        pre = (
            Preprocess.from_dict(preprocess)
            if isinstance(preprocess, dict)
            else (preprocess or Preprocess())
        )
        self.preprocess = pre.at_size(image_size)
        self.classes, self.subset_seed = classes, subset_seed
        self.samples_per_class, self.train_fraction = samples_per_class, train_fraction
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.persistent_workers = persistent_workers
        # Cheap checks first, so a typo fails before any file is read.
        check_budget(samples_per_class, train_fraction)
        if augment not in transforms.AUGMENTS:
            raise one_of("data.augment", augment, transforms.AUGMENTS, what="augmentation preset")
        if num_workers != "auto" and (
            isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0
        ):
            raise TlbenchError(
                "DataLoader workers must be a count",
                key="data.num_workers",
                value=num_workers,
                allowed="auto or an integer >= 0 (0 = load in the main process)",
                fix="e.g. data.num_workers=4",
            )
        self.splits: dict[str, Split] = {}
        self.class_names: list[str] = []
        # Files skipped at setup as unreadable: [{"path", "reason"}]; train.py puts them in
        # summary.json. Only folder datasets can have any.
        self.bad_files: list[dict[str, str]] = []

    # -- to implement --------------------------------------------------------------------------
    def load_splits(self) -> tuple[dict[str, Split], list[str]]:
        """Return {'train','val','test'} splits and the class names (index order)."""
        raise NotImplementedError

    def read(self, item) -> torch.Tensor:
        """One item -> uint8 tensor (C, H, W). Tensor-backed datasets hold it already."""
        return item

    def reader(self) -> Callable:
        """What DataLoader workers call on each item. Folder datasets return a small picklable
        object instead of a bound method, so spawned workers (macOS, Windows) do not pickle the
        whole DataModule."""
        return self.read

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
            splits, names = select_classes(splits, names, self.classes)
        if self.samples_per_class is not None or self.train_fraction is not None:
            train = splits["train"]
            splits["train"] = train.take(
                budget_indices(
                    train.targets, self.samples_per_class, self.train_fraction, self.subset_seed
                )
            )
        empty = [k for k in ("train", "val", "test") if k in splits and len(splits[k].targets) == 0]
        if empty:
            raise TlbenchError(
                f"the {' and '.join(empty)} split(s) of {self.name} hold no images",
                key="data.classes" if self.classes else "data",
                value=list(self.classes) if self.classes else self.name,
                fix="use more images per class or smaller val/test fractions",
            )
        self.splits, self.class_names = splits, names

    def _select_classes(self, splits: dict[str, Split], names: list[str]):
        return select_classes(splits, names, self.classes)

    def dataset(self, split: str, train: bool | None = None) -> ImageDataset:
        self.setup()
        train = split == "train" if train is None else train
        return ImageDataset(
            self.splits[split],
            self.reader(),
            transforms.build(self.preprocess, self.augment, train),
        )

    def loader_settings(self) -> dict:
        """DataLoader knobs. auto: in-memory tensors load in the main process (a worker would only
        copy what is already decoded); files get min(4, CPUs) workers -- decoding JPEGs is the
        bottleneck, and more than 4 rarely pays on a desktop. pin_memory helps only with CUDA;
        persistent workers save re-forking them every epoch."""
        if self.num_workers == "auto":
            workers = 0 if self.in_memory else min(4, usable_cpus())
        else:
            workers = int(self.num_workers)
        pin = torch.cuda.is_available() if self.pin_memory == "auto" else bool(self.pin_memory)
        persistent = (
            workers > 0 if self.persistent_workers == "auto" else bool(self.persistent_workers)
        )
        return {
            "num_workers": workers,
            "pin_memory": pin,
            "persistent_workers": persistent and workers > 0,
        }

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.dataset(split),
            batch_size=self.batch_size,
            shuffle=shuffle,
            **self.loader_settings(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def sizes(self) -> dict[str, int]:
        self.setup()
        return {k: len(v.targets) for k, v in self.splits.items()}
