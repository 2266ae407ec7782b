"""Value checks of the `data` node, before any file is read: batch and image sizes, DataLoader
workers (at most the usable CPUs: tlbench.data.loading.check_workers says why), label budgets,
split fractions (alone and together), the class selection (names known without reading files come
from the DataModule class itself, `known_class_names(**cfg)`), the dataset folders, and a run dir
that would land inside the dataset.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, ListConfig

from tlbench.config import keys
from tlbench.config.app import REPO_ROOT
from tlbench.errors import TlbenchError, one_of

DATA_DIR_KEYS = ("root", "train_dir", "val_dir", "test_dir")
# The largest pretrained input size in torchvision/timm is ~600-800 px; one 4096 x 4096 RGB image
# is 192 MiB in fp32 before any activation, so larger sizes only end in an allocator error.
MAX_IMAGE_SIZE = 4096


def check_data(data: DictConfig, run_dir: Path | None = None) -> None:
    # The data room's own checks (one copy each), called before the DataModule exists.
    if "batch_size" in data:
        from tlbench.config.values import whole_number

        whole_number(data.get("batch_size"), "data.batch_size", "32")
    if "num_workers" in data:  # capped at the CPUs this process may use (see check_workers)
        check_workers(data.get("num_workers"))
    _check_image_size(data.get("image_size"))
    check_budget(data.get("samples_per_class"), data.get("train_fraction"))
    if "val_fraction" in data:
        check_fraction("data.val_fraction", data.get("val_fraction"))
    if "test_fraction" in data:
        check_fraction("data.test_fraction", data.get("test_fraction"), allow_zero=True)
    _check_fraction_sum(data)
    _check_classes(data)
    _check_folders(data)
    if run_dir is not None:
        _check_run_dir(data, run_dir)


def _check_image_size(size) -> None:
    if size is None:
        return
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise TlbenchError(
            "the image size is a side length in pixels",
            key="data.image_size",
            value=size,
            allowed="an integer >= 1 (the model's minimum is checked next), or null for the "
            "backbone's pretrained size",
            fix="e.g. data.image_size=64",
        )
    if size > MAX_IMAGE_SIZE:
        raise TlbenchError(
            f"images of {size} x {size} px would need {3 * 4 * size * size / 2**30:.0f} GiB each "
            "in fp32 before any activation; pretrained backbones use 224-600 px",
            key="data.image_size",
            value=size,
            allowed=f"1 .. {MAX_IMAGE_SIZE}, or null for the backbone's pretrained size",
            fix="e.g. data.image_size=224",
        )


def _check_fraction_sum(data: DictConfig) -> None:
    """val_fraction and test_fraction are carved out of the same images: train keeps the rest."""
    carved = {
        k: data.get(k)
        for k, d in (("val_fraction", "val_dir"), ("test_fraction", "test_dir"))
        if k in data and not data.get(d)
    }
    total = sum(carved.values())
    if len(carved) == 2 and total >= 1:
        terms = " + ".join(f"data.{k}={v:g}" for k, v in carved.items())
        raise TlbenchError(
            f"the split fractions sum to {total:g} {'>' if total > 1 else '='} 1 ({terms}), so no "
            f"images remain for the training split, which gets the rest (1 - {total:g})",
            key="data.val_fraction",
            value=carved["val_fraction"],
            allowed="data.val_fraction + data.test_fraction < 1 (the rest is the training split)",
            fix="e.g. data.val_fraction=0.15 data.test_fraction=0.15 (70 % train)",
        )


def known_class_names(data: DictConfig) -> list[str] | None:
    """Class names the DataModule class knows without reading any file, or None."""
    try:
        cls = keys.locate(data._target_, "data")
    except (TlbenchError, AttributeError):
        return None  # reported with the other _target_ checks
    known = getattr(cls, "known_class_names", None)
    if known is None:
        return None
    plain = {str(k): keys.value(data, k, "data") for k in data if not str(k).startswith("_")}
    names = known(**plain)
    return [str(n) for n in names] if names is not None else None


def _check_classes(data: DictConfig) -> None:
    classes = data.get("classes")
    if classes is None:
        return
    if not isinstance(classes, ListConfig) or not classes:
        raise TlbenchError(
            "data.classes is a list of class names",
            key="data.classes",
            value=keys.raw(data, "classes"),
            allowed="a list of at least 2 class names, or null for all classes",
            fix="e.g. 'data.classes=[cat,dog]' (quote it in a shell)",
        )
    wanted = [str(c) for c in classes]
    if len(set(wanted)) < 2:
        raise TlbenchError(
            "a classifier needs at least 2 classes to tell apart",
            key="data.classes",
            value=wanted,
            allowed="a list of at least 2 distinct class names, or null for all classes",
            fix="add another class, e.g. 'data.classes=[3,8]' (quote it in a shell)",
        )
    known = known_class_names(data)
    if known is None:
        return  # class names come from the files: checked at setup with the same message
    for c in wanted:
        if c not in known:
            raise one_of("data.classes", c, known, what="class name")


def _check_folders(data: DictConfig) -> None:
    """A dataset folder that does not exist (and will not be downloaded) is an error now, not
    after the model is built."""
    if data.get("download"):
        return
    split_dirs = data.get("train_dir") is not None  # then data.root is not read
    for key in DATA_DIR_KEYS:
        if key not in data or (key == "root" and split_dirs):
            continue
        v = keys.value(data, key, "data")
        if v is None:
            continue
        p = resolve(str(v))
        if p.is_dir():
            continue
        is_file = p.exists()
        raise TlbenchError(
            f"{p} is a file, not a folder" if is_file else f"the dataset folder {p} does not exist",
            key=f"data.{key}",
            value=str(v),
            fix="point it at the folder holding the dataset"
            + (
                ", or set data.download=true on a machine with internet access"
                if "download" in data and not is_file
                else ""
            )
            + " (see the comments in conf/data/<dataset>.yaml for the layout)",
        )


def _check_run_dir(data: DictConfig, run_dir: Path) -> None:
    """Outputs written inside an image folder would be read back as classes (or images)."""
    run = resolve(str(run_dir)).resolve()
    for key in DATA_DIR_KEYS:
        v = data.get(key) if key in data else None
        if v is None:
            continue
        folder = resolve(str(keys.value(data, key, "data"))).resolve()
        if run == folder or folder in run.parents:
            raise TlbenchError(
                f"the run's output folder {run} is inside the dataset folder data.{key}, so its "
                "files would be read as images or classes",
                key="hydra.run.dir",
                value=str(run_dir),
                allowed=f"a folder outside {folder}",
                fix="e.g. hydra.run.dir=outputs/runs/<name> (the default), or move the dataset",
            )


# -- value rules the data room applies too (it imports them from here: config is below data) --
MAX_AUTO_WORKERS = 4  # decoding JPEGs stops scaling around here on desktop disks and CPUs


def usable_cpus() -> int:
    """CPUs this process may run on (respects taskset/cgroup affinity, unlike os.cpu_count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def check_workers(num_workers, key: str = "data.num_workers") -> None:
    """A count in 0 .. usable CPUs (or auto). Above the CPUs is an error, not a silent cap: each
    worker is a process on the same CPUs, so more of them never load faster but each costs
    memory (the audit's 1000 workers ended in the OOM killer), such a value is a typo or a
    misunderstanding, and a capped value would make the config and summary.json say something
    else than what ran. A resumed run may override data.num_workers on a smaller machine."""
    cap = usable_cpus()
    if num_workers != "auto" and (
        isinstance(num_workers, bool)
        or not isinstance(num_workers, int)
        or not 0 <= num_workers <= cap
    ):
        too_many = isinstance(num_workers, int) and num_workers > cap
        raise TlbenchError(
            f"this process may use {cap} CPUs (os.sched_getaffinity), and each DataLoader worker "
            "is a process on them: more workers than CPUs only cost memory"
            if too_many
            else "DataLoader workers must be a count",
            key=key,
            value=num_workers,
            allowed=f"auto (min({MAX_AUTO_WORKERS}, CPUs)) or an integer in 0 .. {cap} "
            "(0 = load in the main process)",
            fix=f"e.g. {key}={min(MAX_AUTO_WORKERS, cap)}, or {key}=auto",
        )


def check_fraction(key: str, value, allow_zero: bool = False) -> float:
    """A split fraction: in (0, 1) -- or [0, 1) where 0 means "no such split"."""
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    if not ok or not (0 <= value < 1 if allow_zero else 0 < value < 1):
        raise TlbenchError(
            "a split fraction must be a share of the images",
            key=key,
            value=value,
            allowed=f"a number in {'[0, 1)' if allow_zero else '(0, 1)'}",
            fix=f"e.g. {key}=0.15",
        )
    return float(value)


def check_budget(samples_per_class, train_fraction) -> None:
    """A label budget is one positive count or one fraction in (0, 1], never both."""
    if samples_per_class is not None and train_fraction is not None:
        raise TlbenchError(
            "two label budgets are set; they would contradict each other",
            key="data.train_fraction",
            value=train_fraction,
            fix=f"keep one: data.samples_per_class={samples_per_class} or "
            f"data.train_fraction={train_fraction}, and set the other to null",
        )
    if samples_per_class is not None and (
        isinstance(samples_per_class, bool)
        or not isinstance(samples_per_class, (int, np.integer))
        or samples_per_class < 1
    ):
        raise TlbenchError(
            "the label budget must be a whole number of training images per class",
            key="data.samples_per_class",
            value=samples_per_class,
            allowed="an integer >= 1, or null for all images",
            fix="e.g. data.samples_per_class=10",
        )
    if train_fraction is not None and (
        isinstance(train_fraction, bool)
        or not isinstance(train_fraction, (int, float, np.floating))
        or not 0 < train_fraction <= 1
    ):
        raise TlbenchError(
            "the label budget must be a fraction of the training split",
            key="data.train_fraction",
            value=train_fraction,
            allowed="a number in (0, 1], or null for all images",
            fix="e.g. data.train_fraction=0.1 for 10 % of the training images of each class",
        )


def resolve(path: str | Path) -> Path:
    """An absolute path. Relative paths are taken from the working directory (Hydra does not
    change it) or, failing that, from the repository root, where `paths.data_dir` points."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    here = Path.cwd() / p
    return here if here.exists() or not (REPO_ROOT / p).exists() else REPO_ROOT / p
