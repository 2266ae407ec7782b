"""Every DataModule on tiny datasets written in the real on-disk formats into tmp_path (CIFAR's
pickled batches, MNIST's idx files, ImageFolder trees of JPEG/PNG files). Nothing downloads."""

from __future__ import annotations

import json
import pickle
import unicodedata
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from tests.helpers.datasets import (
    AQUATIC,
    FINE,
    PRE,
    dump_pickle,
    image_tree,
    save_image,
    write_cifar10,
    write_cifar100,
    write_mnist,
)
from tlbench.config import CONF_DIR, compose
from tlbench.config.instantiate import instantiate
from tlbench.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from tlbench.data.digits import DigitsDataModule
from tlbench.data.folders import ImageFolderDataModule
from tlbench.data.images import ImageReader
from tlbench.data.loading import one_thread_per_worker, usable_cpus
from tlbench.data.mnist import FashionMNISTDataModule, MNISTDataModule
from tlbench.data.split_folders import AlienVsPredatorDataModule, HymenopteraDataModule
from tlbench.data.splits import budget_indices
from tlbench.errors import TlbenchError


def test_cifar10_reads_home_made_batches_without_torchvision_md5(tmp_path):
    write_cifar10(tmp_path, per_class=10, test_per_class=3)
    dm = CIFAR10DataModule(root=str(tmp_path), val_fraction=0.2, preprocess=PRE, batch_size=8)
    dm.setup()
    assert dm.num_classes == 10 and dm.class_names[0] == "airplane"
    assert dm.sizes() == {"train": 80, "val": 20, "test": 30}
    for split in dm.splits.values():
        assert split.items.shape[1:] == (3, 32, 32) and split.items.dtype == torch.uint8
        # the byte written first in each row is the label: images stayed with their labels
        assert torch.equal(split.items[:, 0, 0, 0].long(), torch.as_tensor(split.targets))
        assert np.bincount(split.targets).tolist() == [len(split.targets) // 10] * 10
    x, y = next(dm.batches("train"))
    assert x.shape == (8, 3, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert dm.loader_settings()["num_workers"] == 0  # in memory


def test_cifar_md5_check_is_opt_in_and_names_the_file(tmp_path):
    write_cifar10(tmp_path)
    with pytest.raises(TlbenchError, match=r"data.check_md5=True.*data_batch_1 differs"):
        CIFAR10DataModule(root=str(tmp_path), check_md5=True).setup()


def test_cifar_rejects_a_broken_batch_and_code_in_pickles(tmp_path):
    write_cifar10(tmp_path)
    base = tmp_path / "cifar-10-batches-py"
    dump_pickle(base / "data_batch_3", {"data": np.zeros((4, 100), np.uint8), "labels": [0] * 4})
    with pytest.raises(TlbenchError, match=r"data_batch_3 has no \(N, 3072\) 'data' array"):
        CIFAR10DataModule(root=str(tmp_path)).setup()
    with open(base / "data_batch_3", "wb") as f:
        pickle.dump({"data": __import__("os").getcwd}, f)  # a global outside the allow-list
    with pytest.raises(TlbenchError, match=r"refusing to load"):
        CIFAR10DataModule(root=str(tmp_path)).setup()


def test_cifar100_aquatic_config_selects_the_ten_aquatic_classes(tmp_path):
    write_cifar100(tmp_path, per_class=10, test_per_class=3)
    cfg = compose(["data=cifar100_aquatic", f"data.root={tmp_path}", "paths.output_dir=/tmp/x"])
    dm = instantiate(cfg.data, "data", preprocess=PRE.to_dict())
    dm.setup()
    assert dm.class_names == AQUATIC and dm.num_classes == 10
    assert dm.sizes() == {"train": 80, "val": 20, "test": 30}  # 80/20 of train; official test
    for split in dm.splits.values():
        fine_written = split.items[:, 0, 0, 0].long().numpy()  # first byte = original fine label
        assert [FINE[i] for i in fine_written] == [AQUATIC[t] for t in split.targets]
    assert set(dm.splits["train"].targets) == set(range(10))
    # the same selection by name on the full set, and a wrong superclass name
    dm2 = CIFAR100DataModule(root=str(tmp_path), classes=["shark", "beaver"])
    dm2.setup()
    assert dm2.class_names == ["shark", "beaver"] and dm2.sizes()["test"] == 6
    with pytest.raises(TlbenchError, match=r"data.superclasses='fishes'.*did you mean 'fish'"):
        CIFAR100DataModule(root=str(tmp_path), superclasses=["fishes"]).setup()


def test_missing_cifar_names_folder_layout_and_source(tmp_path):
    with pytest.raises(TlbenchError) as err:
        CIFAR10DataModule(root=str(tmp_path / "nowhere")).setup()
    msg = str(err.value)
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py") in msg
    assert "data_batch_1" in msg and "batches.meta" in msg
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in msg
    assert "data.download=true" in msg


def test_offline_download_is_a_clear_error(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network (test)")

    monkeypatch.setattr(urllib.request, "urlopen", offline)  # torchvision's downloader uses it
    with pytest.raises(
        TlbenchError, match=r"cifar-100-python.*the download failed too.*no network"
    ):
        CIFAR100DataModule(root=str(tmp_path), download=True).prepare_data()
    with pytest.raises(
        TlbenchError,
        match=r"FashionMNIST/raw.*download failed too.*no network.*Fix: check the network",
    ):
        FashionMNISTDataModule(root=str(tmp_path), download=True).prepare_data()
    with pytest.raises(TlbenchError, match=r"hymenoptera.*download failed too.*no network"):
        HymenopteraDataModule(root=str(tmp_path / "hy"), download=True).prepare_data()


def test_only_prepare_data_downloads(tmp_path, monkeypatch):
    """setup() runs on every DDP process; downloading there would fetch once per GPU at once."""

    def no_download(*args, **kwargs):
        raise AssertionError("setup() tried to download")

    monkeypatch.setattr(urllib.request, "urlopen", no_download)
    for dm in (
        CIFAR10DataModule(root=str(tmp_path), download=True),
        MNISTDataModule(root=str(tmp_path), download=True),
        HymenopteraDataModule(root=str(tmp_path / "hy"), download=True),
    ):
        with pytest.raises(TlbenchError, match="was not found"):
            dm.setup()


# -- MNIST-likes ------------------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [True, False])
def test_mnist_reads_idx_files_in_torchvision_layout(tmp_path, gz):
    write_mnist(tmp_path, gz=gz, n=50)
    dm = MNISTDataModule(root=str(tmp_path), val_fraction=0.2, preprocess=PRE, batch_size=4)
    dm.setup()
    assert dm.sizes() == {"train": 40, "val": 10, "test": 10}
    assert dm.class_names == [str(i) for i in range(10)]
    for split in dm.splits.values():
        assert split.items.shape[1:] == (1, 28, 28)
        assert torch.equal(split.items[:, 0, 0, 0].long(), torch.as_tensor(split.targets) * 20)
    x, _ = next(dm.batches("train"))
    assert x.shape == (4, 3, 16, 16)  # grayscale became 3 channels


def test_fashion_mnist_names_classes_and_reports_truncated_files(tmp_path):
    write_mnist(tmp_path, folder="FashionMNIST", gz=False, n=60)
    dm = FashionMNISTDataModule(root=str(tmp_path), classes=["Sneaker", "T-shirt/top"])
    dm.setup()
    assert dm.class_names == ["Sneaker", "T-shirt/top"] and dm.sizes()["test"] == 2
    path = tmp_path / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(
        TlbenchError, match=r"t10k-images-idx3-ubyte is not a valid idx file.*truncated"
    ):
        FashionMNISTDataModule(root=str(tmp_path)).setup()
    with pytest.raises(TlbenchError, match=r"looked in .*empty/FashionMNIST/raw and .*empty for"):
        FashionMNISTDataModule(root=str(tmp_path / "empty")).setup()


# -- folders: the bad-file catalogue ------------------------------------------------------------------
NFD_NAME = unicodedata.normalize("NFD", "café crème")  # how macOS spells it on disk


def catalogue(folder: Path) -> Path:
    """One class per kind of awkward-but-valid file, plus the bad files a real folder has."""
    for i in range(3):
        save_image(folder / "ants" / f"a{i}.jpg", "jpg", seed=i)
        save_image(folder / "bees & wasps" / f"UPPER{i}.JPG", "JPG", seed=10 + i)
    save_image(folder / NFD_NAME / "cmyk.jpg", "cmyk")
    save_image(folder / NFD_NAME / "rgba.png", "rgba")
    save_image(folder / NFD_NAME / "deep" / "gray16.png", "png16")  # sub-folders count too
    save_image(folder / NFD_NAME / "gray.png", "gray")
    save_image(folder / "ants" / "truncated.jpg", "truncated")
    save_image(folder / "ants" / "not_really.jpg", "text")
    save_image(folder / "bees & wasps" / "empty.png", "empty")
    (folder / "bees & wasps" / "notes.txt").write_text("collected 2024")
    (folder / "ants" / ".DS_Store").write_bytes(b"\0\1")  # OS litter: ignored silently
    (folder / ".ipynb_checkpoints").mkdir()  # never a class
    return folder


def test_bad_files_are_skipped_listed_and_awkward_images_load(tmp_path, caplog):
    root = catalogue(tmp_path / "imgs")
    dm = ImageFolderDataModule(
        train_dir=str(root),
        val_dir=str(root),
        test_fraction=0,  # test = val
        preprocess=PRE,
        batch_size=4,
        num_workers=0,
    )
    with caplog.at_level("WARNING", logger="tlbench"):
        dm.setup()
    assert dm.class_names == ["ants", "bees & wasps", "café crème"]  # NFC, sorted
    bad = {Path(b["path"]).name: b["reason"] for b in dm.bad_files}
    assert set(bad) == {"truncated.jpg", "not_really.jpg", "empty.png", "notes.txt"}
    assert "not an image file" in bad["notes.txt"] and "empty file" in bad["empty.png"]
    assert (
        "cannot be decoded" in bad["truncated.jpg"] and "cannot be decoded" in bad["not_really.jpg"]
    )
    assert len(dm.bad_files) == 4  # listed once though train and val share the folder
    assert "skipping 4 unreadable" in caplog.text and "truncated.jpg" in caplog.text
    assert np.bincount(dm.splits["train"].targets).tolist() == [3, 3, 4]
    assert any(p.endswith(".JPG") for p in dm.splits["train"].items)

    read = dm.reader()
    got = {Path(p).name: read(p) for p in dm.splits["train"].items}
    assert got["gray.png"].shape == (1, 12, 12) and got["cmyk.jpg"].shape == (3, 12, 12)
    assert got["cmyk.jpg"][:, 6, 6].tolist()[0] > 200 and got["cmyk.jpg"][1:, 6, 6].max() < 60
    assert got["gray16.png"].shape == (1, 12, 12) and got["gray16.png"].unique().tolist() == [128]
    rgba = got["rgba.png"]  # blue where opaque, white where transparent
    assert rgba[:, 0, 0].tolist() == [0, 0, 255] and rgba[:, -1, 0].tolist() == [255, 255, 255]
    batches = list(dm.train_dataloader())
    assert sum(len(y) for _, y in batches) == 10
    assert all(x.shape[1:] == (3, 16, 16) for x, _ in batches)

    summary_line = json.dumps(dm.bad_files)  # goes into summary.json as is
    assert "truncated.jpg" in summary_line

    by_name = ImageFolderDataModule(
        train_dir=str(root), val_dir=str(root), test_fraction=0, classes=["café crème", "ants"]
    )
    by_name.setup()
    assert by_name.class_names == ["café crème", "ants"]


def test_bad_files_can_be_refused_up_front(tmp_path):
    root = catalogue(tmp_path / "imgs")
    with pytest.raises(TlbenchError) as err:
        ImageFolderDataModule(root=str(root), on_bad_file="error").setup()
    msg = str(err.value)
    assert msg.startswith("data.on_bad_file='error': 4 file(s) cannot be used as images")
    assert "truncated.jpg" in msg and "notes.txt" in msg and "data.on_bad_file=skip" in msg
    with pytest.raises(TlbenchError, match=r"data.on_bad_file='ignore'.*Allowed: error, skip"):
        ImageFolderDataModule(root=str(root), on_bad_file="ignore")


def test_verify_none_defers_the_failure_to_a_clear_read_error(tmp_path):
    root = image_tree(tmp_path / "imgs", {"a": 2, "b": 2})
    save_image(root / "a" / "broken.jpg", "text")
    dm = ImageFolderDataModule(
        train_dir=str(root), val_dir=str(root), test_fraction=0, verify="none"
    )
    dm.setup()
    assert dm.bad_files == []
    with pytest.raises(TlbenchError, match=r"broken.jpg could not be decoded.*data.verify=full"):
        dm.reader()(str(root / "a" / "broken.jpg"))


def test_jpeg_with_bytes_after_its_end_marker_is_not_called_truncated(tmp_path):
    root = image_tree(tmp_path / "imgs", {"a": 2, "b": 2})
    path = root / "a" / "0.jpg"
    path.write_bytes(path.read_bytes() + b"vendor trailer" * 10)
    dm = ImageFolderDataModule(train_dir=str(root), val_dir=str(root), test_fraction=0)
    dm.setup()
    assert dm.bad_files == [] and dm.reader()(str(path)).shape == (3, 12, 12)


def test_folder_structure_errors_are_clear(tmp_path):
    train = image_tree(tmp_path / "train", {"cat": 2, "dog": 2})
    val = image_tree(tmp_path / "val", {"cat": 1, "fox": 1})
    with pytest.raises(
        TlbenchError, match=r"data.val_dir=.*different classes.*missing \['dog'\].*extra \['fox'\]"
    ):
        ImageFolderDataModule(train_dir=str(train), val_dir=str(val)).setup()
    (tmp_path / "train" / "empty_class").mkdir()
    with pytest.raises(TlbenchError, match=r"data.root=.*empty_class hold no readable image"):
        ImageFolderDataModule(root=str(train)).setup()
    only_bad = image_tree(tmp_path / "bad", {"cat": 2})
    save_image(only_bad / "dog" / "x.jpg", "truncated")
    with pytest.raises(TlbenchError, match=r"dog hold no readable image"):
        ImageFolderDataModule(root=str(only_bad)).setup()
    flat = tmp_path / "flat"
    save_image(flat / "x.jpg")
    with pytest.raises(TlbenchError, match=r"has no class folders: expected .*flat/<class name>/"):
        ImageFolderDataModule(root=str(flat)).setup()
    with pytest.raises(TlbenchError, match=r"data.root=.*nope.*is not a folder"):
        ImageFolderDataModule(root=str(tmp_path / "nope")).setup()
    with pytest.raises(TlbenchError, match=r"data.root=None.*data.root=<folder"):
        ImageFolderDataModule(root=None)


def test_imagefolder_root_is_split_stratified_and_seeded(tmp_path):
    root = image_tree(tmp_path / "imgs", {"a": 20, "b": 20}, kind="png")
    dm = ImageFolderDataModule(root=str(root), val_fraction=0.25, test_fraction=0.25)
    dm.setup()
    assert dm.sizes() == {"train": 20, "val": 10, "test": 10}
    for split in dm.splits.values():
        assert np.bincount(split.targets).tolist() == [len(split.targets) // 2] * 2
    all_items = [p for s in dm.splits.values() for p in s.items]
    assert len(set(all_items)) == 40  # disjoint and complete
    again = ImageFolderDataModule(root=str(root), val_fraction=0.25, test_fraction=0.25)
    again.setup()
    other = ImageFolderDataModule(
        root=str(root), val_fraction=0.25, test_fraction=0.25, split_seed=1
    )
    other.setup()
    assert again.splits["val"].items == dm.splits["val"].items
    assert other.splits["val"].items != dm.splits["val"].items
    no_test = ImageFolderDataModule(root=str(root), test_fraction=0)
    no_test.setup()
    assert no_test.splits["test"] is no_test.splits["val"]
    carved = ImageFolderDataModule(train_dir=str(root), val_fraction=0.5, test_fraction=0)
    carved.setup()
    assert carved.sizes() == {"train": 20, "val": 20, "test": 20}
    assert dm.loader_settings() == {
        "num_workers": min(4, usable_cpus()),
        "pin_memory": torch.cuda.is_available(),
        "persistent_workers": True,
        "worker_init_fn": one_thread_per_worker,  # one torch thread per decoding worker
    }
    manual = ImageFolderDataModule(root=str(root), num_workers=0, pin_memory=True)
    assert manual.loader_settings() == {
        "num_workers": 0,
        "pin_memory": True,
        "persistent_workers": False,
    }
    with pytest.raises(TlbenchError, match=r"data.num_workers=-1"):
        ImageFolderDataModule(root=str(root), num_workers=-1)


def test_hymenoptera_finds_the_unpacked_archive_and_tests_on_val(tmp_path):
    base = tmp_path / "hymenoptera_data"  # as the tutorial's zip unpacks inside root
    image_tree(base / "train", {"ants": 3, "bees": 3})
    image_tree(base / "val", {"ants": 2, "bees": 2})
    dm = HymenopteraDataModule(root=str(tmp_path), preprocess=PRE)
    dm.setup()
    assert dm.class_names == ["ants", "bees"] and dm.num_classes == 2
    assert dm.sizes() == {"train": 6, "val": 4, "test": 4}
    assert dm.splits["test"] is dm.splits["val"]  # documented: no test split of its own
    image_tree(base / "test", {"ants": 1, "bees": 1})
    with_test = HymenopteraDataModule(root=str(tmp_path))  # a test/ folder is used when present
    with_test.setup()
    assert with_test.sizes() == {"train": 6, "val": 4, "test": 2}
    with pytest.raises(TlbenchError) as err:
        HymenopteraDataModule(root=str(tmp_path / "none")).setup()
    msg = str(err.value)
    assert (
        "train/<class>/<images> and val/<class>/<images>" in msg and str(tmp_path / "none") in msg
    )
    assert "https://download.pytorch.org/tutorial/hymenoptera_data.zip" in msg


def test_alien_vs_predator_uses_validation_folder_and_points_to_kaggle(tmp_path):
    image_tree(tmp_path / "data" / "train", {"alien": 2, "predator": 2})
    image_tree(tmp_path / "data" / "validation", {"alien": 1, "predator": 1})
    dm = AlienVsPredatorDataModule(root=str(tmp_path))
    dm.setup()
    assert dm.class_names == ["alien", "predator"] and dm.sizes() == {
        "train": 4,
        "val": 2,
        "test": 2,
    }
    with pytest.raises(TlbenchError) as err:
        AlienVsPredatorDataModule(root=str(tmp_path / "none")).setup()
    msg = str(err.value)
    assert "validation/<class>/<images>" in msg and "kaggle.com" in msg
    assert "data.download=true" not in msg  # there is no automatic download to offer


# -- label budgets and class subsets on every DataModule -------------------------------------------------
def _every_datamodule(tmp_path: Path):
    write_cifar10(tmp_path / "c10", per_class=6)
    write_cifar100(tmp_path / "c100", per_class=6)
    write_mnist(tmp_path / "mn", n=60)
    write_mnist(tmp_path / "fm", folder="FashionMNIST", n=60)
    image_tree(tmp_path / "hy" / "train", {"ants": 6, "bees": 6})
    image_tree(tmp_path / "hy" / "val", {"ants": 2, "bees": 2})
    image_tree(tmp_path / "avp" / "train", {"alien": 6, "predator": 6})
    image_tree(tmp_path / "avp" / "validation", {"alien": 2, "predator": 2})
    image_tree(tmp_path / "if", {"x": 10, "y": 10})
    return {
        "digits": (DigitsDataModule, {}, ["3", "7"]),
        "cifar10": (CIFAR10DataModule, {"root": tmp_path / "c10"}, ["truck", "cat"]),
        "cifar100": (CIFAR100DataModule, {"root": tmp_path / "c100"}, ["whale", "tulip"]),
        "mnist": (MNISTDataModule, {"root": tmp_path / "mn"}, ["1", "0"]),
        "fashion_mnist": (FashionMNISTDataModule, {"root": tmp_path / "fm"}, ["Bag", "Coat"]),
        "hymenoptera": (HymenopteraDataModule, {"root": tmp_path / "hy"}, ["bees", "ants"]),
        "alien_vs_predator": (
            AlienVsPredatorDataModule,
            {"root": tmp_path / "avp"},
            ["predator", "alien"],
        ),
        "imagefolder": (ImageFolderDataModule, {"root": tmp_path / "if"}, ["y", "x"]),
    }


def _conf_datamodules() -> list[str]:
    """Every DataModule class a conf/data/*.yaml names: a new dataset config is covered here
    (or this test fails) without anyone editing a list."""
    files = (CONF_DIR / "data").glob("*.yaml")
    targets = {OmegaConf.load(f).get("_target_") for f in files}  # None: extends another file
    return sorted(str(t) for t in targets if t)


@pytest.mark.parametrize("target", _conf_datamodules())
def test_every_datamodule_takes_class_subsets_and_budgets(tmp_path, target):
    fixtures = {
        f"{c.__module__}.{c.__name__}": (c, kw, s)
        for c, kw, s in _every_datamodule(tmp_path).values()
    }
    assert target in fixtures, f"{target} (conf/data) has no tiny fixture in _every_datamodule"
    cls, kwargs, subset = fixtures[target]
    kwargs = {k: str(v) for k, v in kwargs.items()}
    full = cls(**kwargs)
    full.setup()
    dm = cls(**kwargs, classes=subset, samples_per_class=2, subset_seed=1)
    dm.setup()
    assert dm.class_names == subset and dm.num_classes == 2
    assert np.bincount(dm.splits["train"].targets).tolist() == [2, 2]
    for split in ("val", "test"):  # budgets touch the training split only
        kept = np.isin(full.splits[split].targets, [full.class_names.index(c) for c in subset])
        assert len(dm.splits[split].targets) == kept.sum()
    with pytest.raises(TlbenchError, match=r"data.classes=.*unknown class name.*Allowed: "):
        cls(**kwargs, classes=[subset[0], "no_such_class"]).setup()
    with pytest.raises(TlbenchError, match=r"data.samples_per_class=1000.*class \d+ has only"):
        cls(**kwargs, samples_per_class=1000).setup()


def test_train_fraction_is_validated_and_nested():
    targets = np.repeat(np.arange(4), 40)
    small = budget_indices(targets, None, 0.1, seed=5)
    large = budget_indices(targets, None, 0.5, seed=5)
    assert set(small) < set(large)
    assert np.bincount(targets[small]).tolist() == [4] * 4
    assert np.bincount(targets[large]).tolist() == [20] * 4
    assert len(budget_indices(targets, None, 1.0, seed=5)) == 160
    for bad in (0, -0.5, 1.5, "half", True):
        with pytest.raises(
            TlbenchError, match=r"data.train_fraction=.*Allowed: a number in \(0, 1\]"
        ):
            DigitsDataModule(train_fraction=bad)
    with pytest.raises(TlbenchError, match=r"two label budgets"):
        DigitsDataModule(samples_per_class=10, train_fraction=0.5)
    with pytest.raises(TlbenchError, match=r"data.samples_per_class=0"):
        DigitsDataModule(samples_per_class=0)
    a, b = DigitsDataModule(train_fraction=0.2), DigitsDataModule(train_fraction=0.4)
    a.setup(), b.setup()
    rows = {tuple(r.flatten().tolist()) for r in b.splits["train"].items}
    assert all(tuple(r.flatten().tolist()) in rows for r in a.splits["train"].items)


def test_image_reader_decodes_big_jpegs_at_reduced_size(tmp_path):
    path = tmp_path / "big.jpg"
    Image.new("RGB", (400, 300), (10, 200, 30)).save(path, "JPEG")
    assert ImageReader()(str(path)).shape == (3, 300, 400)
    small = ImageReader(draft=64)(str(path))
    assert small.shape == (3, 75, 100)  # 1/4 scale keeps both sides >= 64
    assert abs(int(small[1].float().mean()) - 200) < 5


# -- every data config composes into a working DataModule, and one end-to-end run ------------------------
def test_data_configs_default_under_paths_data_dir():
    for name in (
        "cifar10",
        "cifar100",
        "mnist",
        "fashion_mnist",
        "hymenoptera",
        "alien_vs_predator",
        "imagefolder",
    ):
        cfg = compose([f"data={name}", "paths.data_dir=/datasets", "paths.output_dir=/tmp/x"])
        assert cfg.data.root == f"/datasets/{name}", name
        assert cfg.data.get("download", False) is False


def test_train_end_to_end_on_an_image_folder(cfg_factory, tmp_path):
    from tlbench.training.run import train

    root = image_tree(tmp_path / "imgs", {"red": 12, "blue": 12})
    save_image(root / "red" / "broken.jpg", "truncated")
    cfg = cfg_factory("data=imagefolder", f"data.root={root}")  # tiny: 8 images per class
    summary = train(cfg)
    assert summary.status == "ok" and summary.num_classes == 2
    assert summary.split_sizes["train"] == 16
    written = json.loads((Path(cfg.paths.output_dir) / "summary.json").read_text())
    assert [Path(b["path"]).name for b in written.get("bad_files", [])] == ["broken.jpg"]
