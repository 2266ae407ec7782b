"""scikit-learn's 8x8 handwritten digits: 1,797 real images shipped inside the package (offline)."""

from __future__ import annotations

import numpy as np
import torch

from tlbench.data.base import BaseDataModule
from tlbench.data.splits import Split, carve, check_fraction


class DigitsDataModule(BaseDataModule):
    @classmethod
    def known_class_names(cls, **cfg) -> list[str]:
        """The class names, known without reading any file (config validation asks)."""
        return [str(i) for i in range(10)]

    def __init__(
        self, split_seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.15, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.split_seed = split_seed
        self.val_fraction = check_fraction("data.val_fraction", val_fraction)
        self.test_fraction = check_fraction("data.test_fraction", test_fraction)

    def load_splits(self):
        from sklearn.datasets import load_digits

        d = load_digits()
        # Pixel values are 0..16; scale to the uint8 range every other dataset uses.
        images = torch.from_numpy(np.round(d.images * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)
        full = Split(images, d.target.astype(np.int64))
        train = 1 - self.val_fraction - self.test_fraction
        fractions = {"train": train, "val": self.val_fraction, "test": self.test_fraction}
        return carve(full, fractions, self.split_seed), [str(c) for c in d.target_names]
