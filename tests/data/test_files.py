"""One listing, extension list and reader for training's folder datasets and for predict; one
DataLoader worker policy."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from tlbench.data import images, loading
from tlbench.data.folders import ImageFolderDataModule
from tlbench.errors import TlbenchError
from tlbench.inference.predict import ImageFiles, find_images
from tlbench.preprocess import Preprocess

PRE = Preprocess(crop_size=16, resize_size=16, mean=(0.5,) * 3, std=(0.5,) * 3)


def _save(path, value: int, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((12, 12, 3), value, np.uint8)).convert(mode).save(path)


@pytest.fixture
def linked_tree(tmp_path):
    """root/cat (real folder), root/dog -> elsewhere/dogs (a symlinked class folder), a hidden
    folder, OS litter, a link cycle."""
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    for i in range(4):
        _save(root / "cat" / f"c{i}.png", 10 * i)
        _save(elsewhere / "dogs" / f"d{i}.JPG", 200 - 10 * i)
    _save(elsewhere / "dogs" / "sub" / "d9.webp", 99)
    _save(root / "cat" / ".hidden" / "x.png", 1)
    (root / "cat" / "Thumbs.db").write_bytes(b"litter")
    os.symlink(elsewhere / "dogs", root / "dog", target_is_directory=True)
    os.symlink(root / "cat", root / "cat" / "loop", target_is_directory=True)  # a cycle
    return root


def test_training_and_predict_see_the_same_files(linked_tree):
    dm = ImageFolderDataModule(root=str(linked_tree), preprocess=PRE, val_fraction=0.2)
    dm.setup()
    assert dm.class_names == ["cat", "dog"]
    trained = sorted(p for s in ("train", "val", "test") for p in dm.splits[s].items)
    predicted = sorted(str(p) for p in find_images(linked_tree))
    assert trained == predicted and len(predicted) == 9  # 4 cats + 5 dogs, each once
    assert any("/dog/sub/" in p for p in predicted)  # inside the linked folder, nested too
    assert not any(".hidden" in p or "Thumbs" in p for p in predicted)


def test_predict_reads_pixels_as_training_does(tmp_path):
    path = tmp_path / "rgba.png"
    rgba = np.zeros((12, 12, 4), np.uint8)
    rgba[..., 2] = 255
    rgba[:6, ..., 3] = 255  # top half opaque blue, bottom half transparent
    Image.fromarray(rgba, "RGBA").save(path)
    training = images.ImageReader()(str(path))
    predicting = ImageFiles([path], lambda x: x)[0][0]
    assert torch.equal(training, predicting)
    assert predicting[:, -1, 0].tolist() == [255, 255, 255]  # composited on white, as in training


def test_one_worker_policy():
    assert loading.worker_count("auto", in_memory=True) == 0
    assert loading.worker_count("auto", in_memory=False) == min(4, loading.usable_cpus())
    assert loading.worker_count("auto", in_memory=False, batches=1) == 0
    cap = loading.usable_cpus()
    assert loading.worker_count(cap, in_memory=True) == cap
    for bad in (-1, cap + 1):  # more workers than usable CPUs: an error naming the cap
        with pytest.raises(TlbenchError, match=f"data.num_workers={bad}.* 0 .. {cap}"):
            loading.worker_count(bad, in_memory=False)
    files = loading.loader_settings(1, in_memory=False)
    assert files["persistent_workers"] and files["worker_init_fn"] is loading.one_thread_per_worker
    assert files["pin_memory"] == torch.cuda.is_available()
    assert "worker_init_fn" not in loading.loader_settings("auto", in_memory=True)
    before = torch.get_num_threads()
    try:
        loading.one_thread_per_worker(0)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_no_os_cpu_count_outside_the_policy():
    """usable_cpus (affinity-aware) is the one CPU count; os.cpu_count only as its fallback."""
    import tlbench

    pkg = os.path.dirname(tlbench.__file__)
    offenders = []
    for folder, _, names in os.walk(pkg):
        for name in names:
            if name.endswith(".py") and name != "data_values.py":  # usable_cpus lives there
                with open(os.path.join(folder, name), encoding="utf-8") as f:
                    text = f.read()
                if "os.cpu_count" in text:
                    offenders.append(os.path.relpath(os.path.join(folder, name), pkg))
    assert offenders == [], offenders
