"""Datasets stored as folders of image files, one sub-folder per class (torchvision's ImageFolder
layout), read lazily from disk by DataLoader workers.

`imagefolder`: `root/<class>/<images>` split stratified and seeded, or explicit `train_dir` /
`val_dir` / `test_dir` (a missing split is carved out of train). Bad files are skipped and listed
in `bad_files`, or refused with `on_bad_file=error`; class names are NFC folder names, sorted as
torchvision sorts them, and must agree across splits. Rules: docs/architecture.md, "Datasets".
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from tlbench.data import files, images
from tlbench.data.base import BaseDataModule
from tlbench.data.loading import usable_cpus
from tlbench.data.splits import Split, carve, check_fraction, nfc
from tlbench.errors import TlbenchError, one_of

log = logging.getLogger("tlbench")

# Folders that are never classes: hidden ones (.ipynb_checkpoints, .git) and macOS zip litter.
IGNORED_DIRS = {"__MACOSX"}
BAD_FILE_POLICIES = ("skip", "error")


def class_dirs(folder: Path, key: str) -> dict[str, Path]:
    """{class name: folder} in sorted order."""
    found: dict[str, Path] = {}
    for d in sorted(folder.iterdir()):
        if not d.is_dir() or d.name.startswith(".") or d.name in IGNORED_DIRS:
            continue
        name = nfc(d.name)
        if name in found:
            raise TlbenchError(
                f"{found[name]} and {d} are the same class name in different Unicode spellings",
                key=key,
                value=str(folder),
                fix="merge the two folders",
            )
        found[name] = d
    return dict(sorted(found.items()))


def class_files(folder: Path) -> list[Path]:
    """Every file under a class folder (sub-folders and linked folders included), sorted."""
    return images.walk_files(folder)


class FolderDataModule(BaseDataModule):
    in_memory = False  # files are decoded per batch, so DataLoader workers pay off
    title = "image folder"

    def __init__(self, verify: str = "header", on_bad_file: str = "skip", **kwargs) -> None:
        super().__init__(**kwargs)
        if verify not in images.VERIFY_MODES:
            raise one_of("data.verify", verify, images.VERIFY_MODES, what="check")
        if on_bad_file not in BAD_FILE_POLICIES:
            raise one_of("data.on_bad_file", on_bad_file, BAD_FILE_POLICIES, what="policy")
        self.verify, self.on_bad_file = verify, on_bad_file

    def reader(self) -> images.ImageReader:
        # Decode JPEGs at >= 2x the resize target: random crops of half the side still come from
        # real pixels, and big photos decode several times faster.
        return images.ImageReader(draft=2 * self.preprocess.resize_size)

    def scan(self, dirs: dict[str, tuple[Path, str]]) -> tuple[dict[str, Split], list[str]]:
        """{split: (folder, config key)} -> checked splits and the class names."""
        per_split = {split: self._classes_in(folder, key) for split, (folder, key) in dirs.items()}
        self._same_classes(per_split, dirs)
        names = list(next(iter(per_split.values())))
        todo = [
            (split, c, path)
            for split, classes in per_split.items()
            for c, name in enumerate(names)
            for path in class_files(classes[name])
        ]
        verdict = self._check_files(list(dict.fromkeys(p for _, _, p in todo)))
        self.bad_files = [{"path": str(p), "reason": why} for p, why in verdict.items() if why]
        self._report_bad(dirs)
        good = [t for t in todo if not verdict[t[2]]]
        splits = {}
        for split, classes in per_split.items():
            items = [(str(p), c) for s, c, p in good if s == split]
            self._no_empty_class(items, names, classes, dirs[split])
            splits[split] = Split([p for p, _ in items], np.array([c for _, c in items], np.int64))
        return splits, names

    @staticmethod
    def _classes_in(folder: Path, key: str) -> dict[str, Path]:
        if not folder.is_dir():
            raise TlbenchError(
                f"{folder} is not a folder",
                key=key,
                value=str(folder),
                allowed="a folder holding one sub-folder of images per class",
                fix=f"check the path (relative paths start from {Path.cwd()})",
            )
        classes = class_dirs(folder, key)
        if not classes:
            raise TlbenchError(
                f"{folder} has no class folders: expected {folder}/<class name>/<image files>",
                key=key,
                value=str(folder),
                fix="put the images of each class in a sub-folder named after the class",
            )
        return classes

    def _check_files(self, unique: list[Path]) -> dict[Path, str | None]:
        """{file: why it cannot be used, or None}. A folder may serve two splits: each file is
        checked once. Checking is I/O and C decoding (which releases the GIL), so threads
        overlap it."""
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=min(8, 2 * usable_cpus())) as pool:
            reasons = pool.map(lambda p: images.check(p, self.verify), unique)
            verdict = dict(zip(unique, reasons, strict=True))
        log.info(
            "checked %d files in %.1f s (data.verify=%s)",
            len(unique),
            time.perf_counter() - start,
            self.verify,
        )
        return verdict

    @staticmethod
    def _no_empty_class(items, names: list[str], classes: dict[str, Path], where) -> None:
        counts = np.bincount([c for _, c in items], minlength=len(names))
        empty = [names[c] for c in np.flatnonzero(counts == 0)]
        if empty:
            folder, key = where
            raise TlbenchError(
                f"class folder(s) {', '.join(str(classes[n]) for n in empty)} hold no "
                "readable image",
                key=key,
                value=str(folder),
                fix="add images to them or remove the folders (bad files are listed above)",
            )

    @staticmethod
    def _same_classes(per_split: dict[str, dict[str, Path]], dirs) -> None:
        (first, ref), *rest = per_split.items()
        for split, classes in rest:
            missing, extra = sorted(set(ref) - set(classes)), sorted(set(classes) - set(ref))
            if missing or extra:
                folder, key = dirs[split]
                raise TlbenchError(
                    f"the {split} folder has different classes than the {first} folder "
                    f"({dirs[first][0]}): missing {missing or 'none'}, extra {extra or 'none'}",
                    key=key,
                    value=str(folder),
                    fix="give every split the same class folders (names must match exactly)",
                )

    def _report_bad(self, dirs) -> None:
        if not self.bad_files:
            return
        listing = "; ".join(f"{b['path']}: {b['reason']}" for b in self.bad_files[:10])
        more = f" (and {len(self.bad_files) - 10} more)" if len(self.bad_files) > 10 else ""
        if self.on_bad_file == "error":
            raise TlbenchError(
                f"{len(self.bad_files)} file(s) cannot be used as images: {listing}{more}",
                key="data.on_bad_file",
                value="error",
                fix="remove or repair them, or set data.on_bad_file=skip to train without them",
            )
        log.warning(
            "skipping %d unreadable or non-image file(s) (listed in summary.json under "
            "bad_files): %s%s",
            len(self.bad_files),
            listing,
            more,
        )


def complete(splits: dict[str, Split], val_fraction: float, test_fraction: float, seed: int):
    """Carve a missing val / test split out of train; with test_fraction 0, test = val."""
    carve_out = {}
    if "val" not in splits:
        carve_out["val"] = val_fraction
    if "test" not in splits and test_fraction > 0:
        carve_out["test"] = test_fraction
    if carve_out:
        fractions = {"train": 1 - sum(carve_out.values()), **carve_out}
        splits = {**splits, **carve(splits["train"], fractions, seed)}
    if "test" not in splits:
        splits["test"] = splits["val"]
    return splits


class ImageFolderDataModule(FolderDataModule):
    """Your own images: `root/<class>/*` split for you, or explicit train/val/test folders."""

    @classmethod
    def known_class_names(cls, root=None, train_dir=None, **cfg) -> list[str] | None:
        """The class folders of data.train_dir (else data.root): listing folders reads no image,
        so config validation refuses a data.classes name that is not among them before any run
        dir exists. None when the folder is missing (the folder checks report that)."""
        key, folder = ("data.train_dir", train_dir) if train_dir else ("data.root", root)
        path = files.resolve(folder) if folder else None
        return list(class_dirs(path, key)) if path is not None and path.is_dir() else None

    def __init__(
        self,
        root: str | None = None,
        train_dir: str | None = None,
        val_dir: str | None = None,
        test_dir: str | None = None,
        split_seed: int = 0,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.root = files.resolve(root) if root else None
        self.dirs = {
            split: files.resolve(d)
            for split, d in (("train", train_dir), ("val", val_dir), ("test", test_dir))
            if d
        }
        if self.dirs and "train" not in self.dirs:
            raise TlbenchError(
                "val_dir/test_dir need a train_dir",
                key="data.train_dir",
                value=None,
                fix="set data.train_dir, or use data.root with one folder per class",
            )
        if not self.dirs and self.root is None:
            raise TlbenchError(
                "no images given",
                key="data.root",
                value=None,
                fix="set data.root=<folder with one sub-folder per class>, or data.train_dir "
                "(and optionally data.val_dir, data.test_dir)",
            )
        self.split_seed = split_seed
        self.val_fraction = check_fraction("data.val_fraction", val_fraction)
        self.test_fraction = check_fraction("data.test_fraction", test_fraction, allow_zero=True)

    def load_splits(self):
        if self.dirs:  # explicit folders win over root
            dirs = {s: (d, f"data.{s}_dir") for s, d in self.dirs.items()}
        else:
            dirs = {"train": (self.root, "data.root")}
        splits, names = self.scan(dirs)
        return complete(splits, self.val_fraction, self.test_fraction, self.split_seed), names
