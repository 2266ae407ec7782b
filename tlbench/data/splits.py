"""Which images go where: the train/val/test split, class subsets and label budgets.

Pure functions of labels and seeds (numpy only), so a split is the same on every machine and
testable without any image. DataModules call them from `BaseDataModule.setup`.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tlbench.config.data_values import check_budget, check_fraction  # noqa: F401 (the rule is config's)
from tlbench.errors import TlbenchError

log = logging.getLogger("tlbench")


def nfc(name: str) -> str:
    """Class names compare in Unicode NFC: macOS writes folder names decomposed (NFD), a
    keyboard types them composed, and both must select the same class."""
    return unicodedata.normalize("NFC", str(name))


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
    _warn_missing_classes(split.targets, dict(zip(fractions, parts, strict=True)))
    return {name: split.take(idx) for name, idx in zip(fractions, parts, strict=True)}


def _warn_missing_classes(targets: np.ndarray, parts: dict[str, np.ndarray]) -> None:
    """A class with too few images for every part (e.g. 1 image and a 70/15/15 split) lands in
    train only; its val/test accuracy then says nothing about it. Say so instead of silently."""
    present = set(np.unique(targets).tolist())
    for name, idx in parts.items():
        if len(idx) == 0:
            continue  # a part asked to be empty (fraction 0)
        missing = sorted(present - set(np.unique(targets[idx]).tolist()))
        if missing:
            counts = {c: int((targets == c).sum()) for c in missing[:10]}
            log.warning(
                "the %s split has no image of class index(es) %s (too few images: %s); "
                "add images to those classes or use fewer, larger splits",
                name,
                missing[:10],
                counts,
            )


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
