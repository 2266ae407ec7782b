"""Image files -> uint8 tensors, and the check at setup that keeps bad files out of an epoch.

`ImageReader` (in DataLoader workers) turns whatever PIL opens into a uint8 (1 or 3, H, W)
tensor: grayscale stays 1 channel, transparency is composited onto white, 16-bit is scaled,
EXIF orientation is applied. `check` (at setup, `data.verify`): `header` (default: cheap
structural checks), `full` (decode every image) or `none`.
Conversions and costs: docs/architecture.md, "Datasets".
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from tlbench.errors import TlbenchError

# What torchvision's ImageFolder accepts, plus GIF; compared case-insensitively (.JPG is fine).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".pbm", ".bmp", ".tif", ".tiff")
IMAGE_EXTENSIONS += (".webp", ".gif")
# Operating-system litter that is silently ignored (as are dot-files like .DS_Store).
IGNORED_FILES = {"thumbs.db", "desktop.ini"}
VERIFY_MODES = ("header", "full", "none")
ORIENTATION = 0x0112  # the EXIF tag


def ignored(path: Path) -> bool:
    return path.name.startswith(".") or path.name.lower() in IGNORED_FILES


def has_image_extension(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def walk_files(folder: Path) -> list[Path]:
    """Every file under `folder`, sorted: sub-folders included and *symlinked* folders followed
    (a class folder linked in from elsewhere is common; `Path.rglob` before Python 3.13 silently
    skips it), each real folder visited once (a link cycle cannot loop), hidden files and folders
    and OS litter skipped. Training's folder datasets and `tlbench.predict` both list through
    here, so they see the same files."""
    found, seen = [], set()
    for top, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(top) / n for n in names if not ignored(Path(n))]
    # A broken symlink stays in the list, so `check` names it instead of it vanishing silently.
    return sorted(p for p in found if p.is_file() or p.is_symlink())


def check(path: Path, verify: str = "header") -> str | None:
    """None if `path` will decode, else the reason it will not."""
    if path.is_symlink() and not path.exists():
        return f"broken symbolic link (its target {os.readlink(path)} does not exist)"
    ext = path.suffix.lower()
    if ext not in IMAGE_EXTENSIONS:
        return f"not an image file (extension {ext or 'none'!r})"
    if verify == "none":
        return None
    try:
        if os.path.getsize(path) == 0:
            return "empty file (0 bytes)"
        with Image.open(path) as img:
            fmt = img.format
            if verify == "full" or fmt not in ("PNG", "JPEG"):
                img.load()
            elif fmt == "PNG":
                img.verify()
        if verify == "header" and fmt == "JPEG" and not _ends_with_eoi(path):
            with Image.open(path) as img:  # trailing bytes after EOI, or truncated? decode to know
                img.load()
    except Exception as exc:
        return f"cannot be decoded ({type(exc).__name__}: {exc})"
    return None


def _ends_with_eoi(path: Path) -> bool:
    """Whether a JPEG ends with its end-of-image marker FF D9 (ignoring zero/newline padding)."""
    with open(path, "rb") as f:
        f.seek(max(0, os.path.getsize(path) - 64))
        return f.read().rstrip(b"\0\r\n ").endswith(b"\xff\xd9")


def to_array(img: Image.Image) -> np.ndarray:
    """Any PIL mode -> uint8 (H, W) grayscale or (H, W, 3) RGB."""
    mode = img.mode
    if mode.startswith("I;16") or mode == "I":  # 16-bit PNG/TIFF (PIL gives "I" for some)
        a = np.asarray(img).astype(np.int64)
        return (np.clip(a, 0, 65535) >> 8).astype(np.uint8)
    if mode == "F":  # float TIFF: no fixed range, so stretch min..max
        a = np.asarray(img, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        return np.round((a - lo) / (hi - lo or 1.0) * 255).astype(np.uint8)
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    if mode in ("L", "RGB"):
        return np.asarray(img)
    if mode == "1":
        return np.asarray(img.convert("L"))
    return np.asarray(img.convert("RGB"))  # RGB, CMYK, YCbCr, P, LAB, HSV, ...


@dataclass
class ImageReader:
    """Path -> uint8 (C, H, W) tensor. `draft`: for JPEGs, let libjpeg decode at 1/2, 1/4 or 1/8
    scale while both sides stay >= draft pixels: up to 1/64 of the pixels to decode when training at
    32-64 px on photos, and no visible loss since the transforms shrink the image further anyway."""

    draft: int | None = None

    def __call__(self, path: str) -> torch.Tensor:
        try:
            with Image.open(path) as img:
                if self.draft and img.format == "JPEG":
                    img.draft(None, (self.draft, self.draft))
                if img.getexif().get(ORIENTATION, 1) != 1:  # rotated phone photo
                    img = ImageOps.exif_transpose(img)
                a = to_array(img)
        except Exception as exc:
            raise TlbenchError(
                f"{path} could not be decoded ({type(exc).__name__}: {exc})",
                fix="set data.verify=full to decode every file at setup and skip the bad ones, or "
                "remove this file",
            ) from exc
        # One copy: PIL's buffer is read-only, and HWC -> CHW needs a copy anyway.
        chw = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
        return torch.from_numpy(np.array(chw, order="C", copy=True))
