import numpy as np
import pytest
import torch

from tlbench.data.digits import DigitsDataModule
from tlbench.data.splits import budget_indices
from tlbench.errors import TlbenchError
from tlbench.preprocess import Preprocess


def test_digits_split_is_fixed_stratified_and_disjoint():
    a, b = DigitsDataModule(), DigitsDataModule()
    a.setup(), b.setup()
    sizes = a.sizes()
    assert sum(sizes.values()) == 1797 and sizes["train"] > sizes["val"] > 200
    assert torch.equal(a.splits["val"].items, b.splits["val"].items)  # same seed, same split
    for split in a.splits.values():
        assert len(np.unique(split.targets)) == 10
    other = DigitsDataModule(split_seed=1)
    other.setup()
    assert not torch.equal(a.splits["val"].items, other.splits["val"].items)


def test_digits_batches_are_normalised_rgb_at_the_requested_size():
    pre = Preprocess(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    dm = DigitsDataModule(image_size=48, preprocess=pre, batch_size=8)
    raw, _ = next(iter(dm.train_dataloader()))  # uint8 index batches, transformed on the device
    assert raw.dtype == torch.uint8 and raw.shape == (8, 1, 8, 8)
    x, y = next(dm.batches("train"))
    assert x.shape == (8, 3, 48, 48) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.min() >= -1.0 - 1e-6 and x.max() <= 1.0 + 1e-6
    assert dm.num_classes == 10 and dm.class_names == [str(i) for i in range(10)]


def test_label_budgets_are_nested_stratified_and_seeded():
    targets = np.repeat(np.arange(5), 30)
    small = budget_indices(targets, 10, None, seed=3)
    large = budget_indices(targets, 20, None, seed=3)
    assert set(small) <= set(large)
    assert np.bincount(targets[small]).tolist() == [10] * 5
    assert not np.array_equal(small, budget_indices(targets, 10, None, seed=4))
    with pytest.raises(TlbenchError, match="data.samples_per_class=31"):
        budget_indices(targets, 31, None, seed=0)


def test_class_subset_renumbers_and_unknown_names_fail():
    dm = DigitsDataModule(classes=["3", "7"])
    dm.setup()
    assert dm.class_names == ["3", "7"] and set(np.unique(dm.splits["train"].targets)) == {0, 1}
    with pytest.raises(TlbenchError, match=r"data.classes.*Allowed: 0, 1, 2"):
        DigitsDataModule(classes=["3", "seven"]).setup()
