"""Value checks of the `data` node, before any file is read: batch and image sizes, DataLoader
workers (at most the usable CPUs: tlbench.data.loading.check_workers says why), label budgets,
split fractions (alone and together), the class selection (names known without reading files come
from the DataModule class itself, `known_class_names(**cfg)`), the dataset folders, and a run dir
that would land inside the dataset.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, ListConfig

from tlbench.config import keys
from tlbench.errors import TlbenchError, one_of

DATA_DIR_KEYS = ("root", "train_dir", "val_dir", "test_dir")
# The largest pretrained input size in torchvision/timm is ~600-800 px; one 4096 x 4096 RGB image
# is 192 MiB in fp32 before any activation, so larger sizes only end in an allocator error.
MAX_IMAGE_SIZE = 4096


def check_data(data: DictConfig, run_dir: Path | None = None) -> None:
    # The data room's own checks (one copy each), called before the DataModule exists.
    from tlbench.data import loading, splits

    if "batch_size" in data:
        from tlbench.config.values import positive_int

        positive_int(data.get("batch_size"), "data.batch_size", "32")
    if "num_workers" in data:  # capped at the CPUs this process may use (see check_workers)
        loading.check_workers(data.get("num_workers"))
    _check_image_size(data.get("image_size"))
    splits.check_budget(data.get("samples_per_class"), data.get("train_fraction"))
    if "val_fraction" in data:
        splits.check_fraction("data.val_fraction", data.get("val_fraction"))
    if "test_fraction" in data:
        splits.check_fraction("data.test_fraction", data.get("test_fraction"), allow_zero=True)
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
    from tlbench.data.files import resolve

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
    from tlbench.data.files import resolve

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
