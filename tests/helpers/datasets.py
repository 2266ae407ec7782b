"""Tiny datasets in the real on-disk formats (CIFAR pickled batches, MNIST idx files, image
folders), written into tmp_path; never downloaded."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from tlbench.preprocess import Preprocess

PRE = Preprocess(crop_size=16, resize_size=16, mean=(0.5,) * 3, std=(0.5,) * 3)

# CIFAR-100's real label names, and which superclass each fine class belongs to.
SUPERCLASSES = {
    "aquatic_mammals": ["beaver", "dolphin", "otter", "seal", "whale"],
    "fish": ["aquarium_fish", "flatfish", "ray", "shark", "trout"],
    "flowers": ["orchid", "poppy", "rose", "sunflower", "tulip"],
    "food_containers": ["bottle", "bowl", "can", "cup", "plate"],
    "fruit_and_vegetables": ["apple", "mushroom", "orange", "pear", "sweet_pepper"],
    "household_electrical_devices": ["clock", "keyboard", "lamp", "telephone", "television"],
    "household_furniture": ["bed", "chair", "couch", "table", "wardrobe"],
    "insects": ["bee", "beetle", "butterfly", "caterpillar", "cockroach"],
    "large_carnivores": ["bear", "leopard", "lion", "tiger", "wolf"],
    "large_man-made_outdoor_things": ["bridge", "castle", "house", "road", "skyscraper"],
    "large_natural_outdoor_scenes": ["cloud", "forest", "mountain", "plain", "sea"],
    "large_omnivores_and_herbivores": ["camel", "cattle", "chimpanzee", "elephant", "kangaroo"],
    "medium_mammals": ["fox", "porcupine", "possum", "raccoon", "skunk"],
    "non-insect_invertebrates": ["crab", "lobster", "snail", "spider", "worm"],
    "people": ["baby", "boy", "girl", "man", "woman"],
    "reptiles": ["crocodile", "dinosaur", "lizard", "snake", "turtle"],
    "small_mammals": ["hamster", "mouse", "rabbit", "shrew", "squirrel"],
    "trees": ["maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"],
    "vehicles_1": ["bicycle", "bus", "motorcycle", "pickup_truck", "train"],
    "vehicles_2": ["lawn_mower", "rocket", "streetcar", "tank", "tractor"],
}
FINE = sorted(n for names in SUPERCLASSES.values() for n in names)
COARSE = sorted(SUPERCLASSES)
AQUATIC = SUPERCLASSES["aquatic_mammals"] + SUPERCLASSES["fish"]


# -- fixture writers (real on-disk formats) ---------------------------------------------------------
def _pixels(labels: np.ndarray) -> np.ndarray:
    """(N, 3072) uint8 CIFAR rows whose first byte encodes the label, so tests can check them."""
    rows = np.random.default_rng(0).integers(0, 256, (len(labels), 3072), dtype=np.uint8)
    rows[:, 0] = labels
    return rows


def dump_pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)  # the originals are Python 2 pickles


def write_cifar10(root: Path, per_class: int = 5, test_per_class: int = 2) -> Path:
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    names = [
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
    dump_pickle(base / "batches.meta", {"label_names": names, "num_cases_per_batch": 10000})
    labels = np.tile(np.arange(10), per_class)
    for i, chunk in enumerate(np.array_split(labels, 5), start=1):
        dump_pickle(base / f"data_batch_{i}", {"data": _pixels(chunk), "labels": chunk.tolist()})
    test = np.tile(np.arange(10), test_per_class)
    dump_pickle(base / "test_batch", {"data": _pixels(test), "labels": test.tolist()})
    return root


def write_cifar100(root: Path, per_class: int = 5, test_per_class: int = 2) -> Path:
    base = root / "cifar-100-python"
    base.mkdir(parents=True)
    dump_pickle(base / "meta", {"fine_label_names": FINE, "coarse_label_names": COARSE})
    coarse_of = {f: COARSE.index(c) for c, fs in SUPERCLASSES.items() for f in fs}
    for name, n in (("train", per_class), ("test", test_per_class)):
        fine = np.tile(np.arange(100), n)
        coarse = [coarse_of[FINE[i]] for i in fine]
        dump_pickle(
            base / name,
            {"data": _pixels(fine), "fine_labels": fine.tolist(), "coarse_labels": coarse},
        )
    return root


def write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


def write_mnist(root: Path, folder: str = "MNIST", gz: bool = True, n: int = 30, n_test: int = 10):
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    for prefix, count in (("train", n), ("t10k", n_test)):
        labels = np.arange(count) % 10
        imgs = np.zeros((count, 28, 28), np.uint8)
        imgs[:, 0, 0] = labels * 20  # pixel (0, 0) encodes the label
        write_idx(raw / f"{prefix}-images-idx3-ubyte", imgs, gz)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels, gz)
    return root


def save_image(path: Path, kind: str = "jpg", seed: int = 0) -> Path:
    """A tiny real image file of the given kind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (12, 12, 3), dtype=np.uint8)
    if kind in ("jpg", "JPG"):
        Image.fromarray(rgb).save(path, "JPEG")
    elif kind == "png":
        Image.fromarray(rgb).save(path, "PNG")
    elif kind == "gray":
        Image.fromarray(rgb[..., 0]).save(path, "PNG")
    elif kind == "cmyk":
        Image.new("CMYK", (12, 12), (0, 255, 255, 0)).save(path, "JPEG")  # pure red
    elif kind == "rgba":
        a = np.zeros((12, 12, 4), np.uint8)
        a[:6] = (0, 0, 255, 255)  # opaque blue top half, fully transparent bottom half
        Image.fromarray(a, "RGBA").save(path, "PNG")
    elif kind == "png16":
        Image.fromarray(np.full((12, 12), 32768, np.uint16)).save(path, "PNG")  # 16-bit gray
    elif kind == "truncated":
        save_image(path, "jpg", seed)
        path.write_bytes(path.read_bytes()[:300])
    elif kind == "text":
        path.write_text("<html>404 Not Found</html>")
    elif kind == "empty":
        path.write_bytes(b"")
    return path


def image_tree(folder: Path, classes: dict[str, int], kind: str = "jpg") -> Path:
    for c, (name, n) in enumerate(classes.items()):
        for i in range(n):
            save_image(
                folder / name / f"{i}.{'png' if kind != 'jpg' else 'jpg'}", kind, seed=c * 100 + i
            )
    return folder


# -- CIFAR ----------------------------------------------------------------------------------------
