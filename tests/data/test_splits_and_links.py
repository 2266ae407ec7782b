"""A class too small for every split is warned about; a broken symlink is listed, not dropped;
data with one class is refused clearly."""

import logging

import numpy as np
import pytest

from tests.helpers.datasets import image_tree, save_image
from tlbench.data import images
from tlbench.data.folders import ImageFolderDataModule
from tlbench.data.splits import Split, carve
from tlbench.errors import TlbenchError


def test_a_class_with_one_image_is_warned_about_when_val_and_test_miss_it(caplog):
    targets = np.array([0] * 20 + [1] * 20 + [2])  # class 2: a single image
    split = Split(items=list(range(len(targets))), targets=targets)
    with caplog.at_level(logging.WARNING, logger="tlbench"):
        parts = carve(split, {"train": 0.7, "val": 0.15, "test": 0.15}, seed=0)
    assert 2 not in set(parts["val"].targets.tolist()) | set(parts["test"].targets.tolist())
    text = caplog.text
    assert "the val split has no image of class index(es) [2]" in text
    assert "the test split has no image of class index(es) [2]" in text


def test_no_warning_when_every_split_sees_every_class(caplog):
    targets = np.repeat(np.arange(3), 20)
    with caplog.at_level(logging.WARNING, logger="tlbench"):
        carve(Split(items=list(range(60)), targets=targets), {"train": 0.8, "val": 0.2}, seed=0)
    assert "has no image of class" not in caplog.text


def test_a_broken_symlink_is_listed_with_its_reason(tmp_path):
    folder = tmp_path / "cats"
    folder.mkdir()
    save_image(folder / "ok.jpg")
    (folder / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")
    files = images.walk_files(folder)
    assert [f.name for f in files] == ["gone.jpg", "ok.jpg"]
    assert images.check(folder / "ok.jpg") is None
    reason = images.check(folder / "gone.jpg")
    assert reason.startswith("broken symbolic link") and "deleted.jpg" in reason


def test_one_class_data_is_a_clear_error_not_a_torchmetrics_crash(tmp_path):
    image_tree(tmp_path / "data", {"only": 6})
    with pytest.raises(TlbenchError, match=r"1 class \(only\).*at least 2 classes"):
        ImageFolderDataModule(root=str(tmp_path / "data")).setup()
