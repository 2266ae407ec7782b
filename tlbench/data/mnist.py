"""MNIST and Fashion-MNIST from their idx files (gzipped or not), held in RAM as uint8.

Layout: torchvision's <root>/MNIST/raw/ and <root>/FashionMNIST/raw/, or a folder holding the four
files directly (e.g. Debian's `dataset-fashion-mnist`). The idx format is simple enough to read
without torchvision's md5 checks, so a tiny home-made file loads as well as the real one.
Val is a stratified, seeded share (`val_fraction`) of the 60,000 training images; test is the
official 10,000-image test set. Format: docs/architecture.md, "Datasets".
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from tlbench.data import files
from tlbench.data.base import BaseDataModule
from tlbench.data.splits import Split, carve, check_fraction
from tlbench.errors import TlbenchError

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: Path) -> np.ndarray:
    """An idx file of unsigned bytes -> numpy array of its declared shape."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        try:
            data = f.read()
        except (OSError, EOFError) as exc:  # truncated or corrupt .gz
            raise _bad(path, f"{type(exc).__name__}: {exc}") from exc
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise _bad(path, "it does not start with an idx magic number for unsigned bytes")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    body = memoryview(data)[4 + 4 * ndim :]
    if len(body) != int(np.prod(dims)):
        raise _bad(path, f"it declares shape {dims} but holds {len(body)} bytes (truncated?)")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims).copy()


def _bad(path: Path, why: str) -> TlbenchError:
    return TlbenchError(
        f"{path} is not a valid idx file: {why}",
        key="data.root",
        value=str(path.parent),
        fix="delete it and download the dataset again (data.download=true)",
    )


class MNISTDataModule(BaseDataModule):
    title = "MNIST"
    folder = "MNIST"  # torchvision's class name, which is also its folder under root
    class_list = [str(i) for i in range(10)]  # "0".."9", as for digits (torchvision: "0 - zero")

    @classmethod
    def known_class_names(cls, **cfg) -> list[str]:
        """The class names, known without reading any file (config validation asks)."""
        return list(cls.class_list)

    def __init__(
        self,
        root: str = "data/mnist",
        download: bool = False,
        split_seed: int = 0,
        val_fraction: float = 0.1,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.root, self.download, self.split_seed = files.resolve(root), download, split_seed
        self.val_fraction = check_fraction("data.val_fraction", val_fraction)

    @staticmethod
    def torchvision_class():
        from torchvision.datasets import MNIST

        return MNIST

    def _candidates(self) -> list[Path]:
        return [self.root / self.folder / "raw", self.root]

    def _find(self) -> dict[str, Path] | None:
        """The four files (plain or .gz) from the first folder that has them all."""
        for folder in self._candidates():
            found = {}
            for name in (n for pair in FILES.values() for n in pair):
                hit = next(
                    (folder / f for f in (name, name + ".gz") if (folder / f).is_file()), None
                )
                if hit is None:
                    break
                found[name] = hit
            else:
                return found
        return None

    def _missing(self, cause: BaseException | None = None) -> TlbenchError:
        names = ", ".join(n for pair in FILES.values() for n in pair)
        return files.missing(
            self.title,
            self._candidates(),
            f"the idx files {names} (each may end in .gz)",
            " or ".join(self.torchvision_class().mirrors),
            value=str(self.root),
            cause=cause,
        )

    def prepare_data(self) -> None:
        """The only place that downloads (see CIFAR10DataModule.prepare_data)."""
        if self._find() is not None:
            return
        if not self.download:
            raise self._missing()
        tv = self.torchvision_class()  # downloads into <root>/<folder>/raw and unpacks
        files.download(lambda: tv(str(self.root), train=True, download=True), self._missing)
        if self._find() is None:
            raise self._missing()

    def load_splits(self):
        found = self._find()
        if found is None:
            raise self._missing()
        splits = {}
        for split, (images_name, labels_name) in FILES.items():
            x, y = read_idx(found[images_name]), read_idx(found[labels_name]).astype(np.int64)
            if x.ndim != 3 or y.ndim != 1 or len(x) != len(y) or (len(y) and y.max() > 9):
                raise _bad(
                    found[labels_name], f"{x.shape} images do not match {y.shape} labels 0..9"
                )
            splits[split] = Split(torch.from_numpy(x).unsqueeze(1), y)
        train_val = carve(
            splits["train"],
            {"train": 1 - self.val_fraction, "val": self.val_fraction},
            self.split_seed,
        )
        return {**train_val, "test": splits["test"]}, list(self.class_list)


class FashionMNISTDataModule(MNISTDataModule):
    title = "Fashion-MNIST"
    folder = "FashionMNIST"
    class_list = [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ]

    def __init__(self, root: str = "data/fashion_mnist", **kwargs) -> None:
        super().__init__(root=root, **kwargs)

    @staticmethod
    def torchvision_class():
        from torchvision.datasets import FashionMNIST

        return FashionMNIST
