"""CIFAR-10 and CIFAR-100 from their "python version" pickled batches, held in RAM as uint8.

Layout, as torchvision unpacks it: <root>/cifar-10-batches-py/{data_batch_1..5, test_batch,
batches.meta} and <root>/cifar-100-python/{train, test, meta}. The pickles are read with an
allow-list unpickler and checked for structure, not md5 (`data.check_md5=true` adds it).
Val is a stratified, seeded share (`val_fraction`) of the official training set; test is the
official test set. Why not torchvision's reader: docs/architecture.md, "Datasets".
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import torch

from tlbench.data import files
from tlbench.data.base import BaseDataModule
from tlbench.data.splits import Split, carve, check_fraction, select_classes
from tlbench.errors import TlbenchError, one_of

# What numpy arrays need to unpickle, under numpy 1 (`numpy.core`) and 2 (`numpy._core`) names.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes (harmless)
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module.split(".", 2)[2]  # avoid numpy 2's deprecation shim
        return super().find_class(module, name)


def load_pickle(path: Path) -> dict:
    """One CIFAR batch/meta file (Python 2 pickles: latin1 turns their byte keys into str)."""
    try:
        with open(path, "rb") as f:
            return _ArrayUnpickler(f, encoding="latin1").load()
    except Exception as exc:
        raise TlbenchError(
            f"{path} is not a readable CIFAR pickle ({type(exc).__name__}: {exc})",
            key="data.root",
            value=str(path.parent.parent),
            fix="delete the folder and download it again (data.download=true)",
        ) from exc


class CIFAR10DataModule(BaseDataModule):
    title = "CIFAR-10"
    folder = "cifar-10-batches-py"
    train_files = tuple(f"data_batch_{i}" for i in range(1, 6))
    test_files = ("test_batch",)
    meta_file = "batches.meta"
    names_key, labels_key = "label_names", "labels"
    # batches.meta's label_names, so config validation can check data.classes without the files.
    class_list = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ]

    @classmethod
    def known_class_names(cls, **cfg) -> list[str] | None:
        """The class names, known without reading any file (config validation asks)."""
        return list(cls.class_list) if cls.class_list else None

    def __init__(
        self,
        root: str = "data/cifar10",
        download: bool = False,
        check_md5: bool = False,
        split_seed: int = 0,
        val_fraction: float = 0.1,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.root, self.download, self.check_md5 = files.resolve(root), download, check_md5
        self.split_seed = split_seed
        self.val_fraction = check_fraction("data.val_fraction", val_fraction)

    @staticmethod
    def torchvision_class():
        from torchvision.datasets import CIFAR10

        return CIFAR10

    @property
    def base(self) -> Path:
        return self.root / self.folder

    def _missing(self, cause: BaseException | None = None) -> TlbenchError:
        names = ", ".join([*self.train_files, *self.test_files, self.meta_file])
        return files.missing(
            self.title,
            [self.base],
            f"the python-version batches ({names})",
            self.torchvision_class().url,
            value=str(self.root),
            cause=cause,
        )

    def _present(self) -> bool:
        needed = [*self.train_files, *self.test_files, self.meta_file]
        return all((self.base / n).is_file() for n in needed)

    def prepare_data(self) -> None:
        """Download (once, on connected machines) when asked and the files are missing. The only
        place that downloads: Lightning calls it on one process; `setup` only reads."""
        if self._present():
            return
        if not self.download:
            raise self._missing()
        tv = self.torchvision_class()
        files.download(lambda: tv(str(self.root), train=True, download=True), self._missing)
        if not self._present():
            raise self._missing()

    def _verify_md5(self) -> None:
        tv = self.torchvision_class()
        for name, md5 in [*tv.train_list, *tv.test_list, (tv.meta["filename"], tv.meta["md5"])]:
            digest = hashlib.md5((self.base / name).read_bytes()).hexdigest()
            if digest != md5:
                raise TlbenchError(
                    f"{self.base / name} differs from the official file (md5 {digest}, "
                    f"expected {md5})",
                    key="data.check_md5",
                    value=True,
                    fix="download it again (delete the folder, data.download=true), or set "
                    "data.check_md5=false to use a modified copy on purpose",
                )

    def _read(self, names: tuple[str, ...], keys: tuple[str, ...], num_classes: tuple[int, ...]):
        """Images (N, 3, 32, 32) uint8 and one int64 label array per key, structure-checked."""
        images, labels = [], {k: [] for k in keys}
        for name in names:
            path = self.base / name
            batch = load_pickle(path)
            data = batch.get("data")
            if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
                shape = getattr(data, "shape", None)
                raise TlbenchError(
                    f"{path} has no (N, 3072) 'data' array (found {type(data).__name__} {shape})",
                    key="data.root",
                    value=str(self.root),
                    fix="re-download the python version of the dataset",
                )
            for key, n in zip(keys, num_classes, strict=True):
                y = np.asarray(batch.get(key, []), dtype=np.int64)
                if len(y) != len(data) or (len(y) and (y.min() < 0 or y.max() >= n)):
                    raise TlbenchError(
                        f"{path}: '{key}' must hold {len(data)} labels in 0..{n - 1}",
                        key="data.root",
                        value=str(self.root),
                        fix="re-download the python version of the dataset",
                    )
                labels[key].append(y)
            images.append(data.astype(np.uint8, copy=False).reshape(-1, 3, 32, 32))
        x = torch.from_numpy(np.concatenate(images))
        return x, [np.concatenate(labels[k]) for k in keys]

    def _label_names(self) -> tuple[list[str], list[str] | None]:
        meta = load_pickle(self.base / self.meta_file)
        return [str(n) for n in meta[self.names_key]], None

    def load_splits(self):
        if not self._present():
            raise self._missing()
        if self.check_md5:
            self._verify_md5()
        names, _ = self._label_names()
        k = (len(names),)
        x, (y,) = self._read(self.train_files, (self.labels_key,), k)
        tx, (ty,) = self._read(self.test_files, (self.labels_key,), k)
        train_val = carve(
            Split(x, y), {"train": 1 - self.val_fraction, "val": self.val_fraction}, self.split_seed
        )
        return {**train_val, "test": Split(tx, ty)}, names


class CIFAR100DataModule(CIFAR10DataModule):
    """CIFAR-100: 100 fine classes in 20 superclasses. `superclasses=[...]` (coarse names such as
    aquatic_mammals, fish) keeps their fine classes, grouped by superclass in the order given."""

    title = "CIFAR-100"
    folder = "cifar-100-python"
    train_files, test_files, meta_file = ("train",), ("test",), "meta"
    names_key, labels_key = "fine_label_names", "fine_labels"
    class_list = None  # 100 fine names, read from the meta file (superclasses select among them)

    def __init__(
        self, root: str = "data/cifar100", superclasses: list[str] | None = None, **kwargs
    ) -> None:
        super().__init__(root=root, **kwargs)
        self.superclasses = list(superclasses) if superclasses else None

    @staticmethod
    def torchvision_class():
        from torchvision.datasets import CIFAR100

        return CIFAR100

    def _label_names(self):
        meta = load_pickle(self.base / self.meta_file)
        return [str(n) for n in meta["fine_label_names"]], [
            str(n) for n in meta["coarse_label_names"]
        ]

    def load_splits(self):
        if not self._present():
            raise self._missing()
        if self.check_md5:
            self._verify_md5()
        fine, coarse = self._label_names()
        keys, k = ("fine_labels", "coarse_labels"), (len(fine), len(coarse))
        x, (y, yc) = self._read(self.train_files, keys, k)
        tx, (ty, tyc) = self._read(self.test_files, keys, k)
        splits, names = {"train": Split(x, y), "test": Split(tx, ty)}, fine
        if self.superclasses:
            wanted = []
            for sc in self.superclasses:
                if sc not in coarse:
                    raise one_of("data.superclasses", sc, coarse, what="CIFAR-100 superclass")
                members = np.unique(y[yc == coarse.index(sc)])
                wanted += [fine[i] for i in members if fine[i] not in wanted]
            splits, names = select_classes(splits, fine, wanted, key="data.superclasses")
        train_val = carve(
            splits["train"],
            {"train": 1 - self.val_fraction, "val": self.val_fraction},
            self.split_seed,
        )
        return {**train_val, "test": splits["test"]}, names
