"""scikit-learn's 8x8 handwritten digits: 1,797 real images shipped inside the package (offline)."""

from __future__ import annotations

import numpy as np
import torch

from tlbench.data.base import BaseDataModule, Split, stratified_split


class DigitsDataModule(BaseDataModule):
    def __init__(self, split_seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.15, **kwargs) -> None:
        super().__init__(**kwargs)
        self.split_seed, self.val_fraction, self.test_fraction = split_seed, val_fraction, test_fraction

    def load_splits(self):
        from sklearn.datasets import load_digits

        d = load_digits()
        # Pixel values are 0..16; scale to the uint8 range every other dataset uses.
        images = torch.from_numpy(np.round(d.images * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)
        targets = d.target.astype(np.int64)
        fractions = [1 - self.val_fraction - self.test_fraction, self.val_fraction, self.test_fraction]
        parts = stratified_split(targets, fractions, self.split_seed)
        full = Split(images, targets)
        return dict(zip(("train", "val", "test"), (full.take(p) for p in parts))), [str(c) for c in d.target_names]
