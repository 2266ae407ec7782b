"""Batched preprocessing on whatever device trains: uint8 (B, C, H, W) in, normalised float
RGB (B, 3, crop, crop) out, channels_last -- the same recipe as `tlbench.data.transforms.build`,
done as a handful of batch operations instead of ~6 small ops per image in Python.

- eval / augment=none: resize (shorter side, antialiased) + centre crop, like torchvision's
  Resize + CenterCrop; outputs match the per-sample path to rounding (the per-sample path rounds
  the resized image to uint8; this one keeps it float).
- classic / strong: a random resized crop and a flip *per image*. Crop boxes are drawn exactly as
  torchvision's `RandomResizedCrop.get_params` draws them (10 tries of scale x log-uniform aspect,
  else the centre crop), vectorised; then one `torchvision.ops.roi_align` call crops and resizes
  every box of the batch at once. roi_align samples bilinearly at each output pixel's centre and,
  when a box shrinks, averages ceil(box/out)^2 samples per output pixel (a box filter: the
  antialiasing). Chosen by measurement (bench/pipeline.py; BENCHMARKS.md, "Input pipeline") over a
  Python loop of per-image `interpolate` calls and over `grid_sample` (no antialiasing).
- strong adds TrivialAugmentWide (one op per image at a random magnitude, `trivial_augment`) and
  RandomErasing (p=0.25, value 0), both per image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from tlbench.data.augment_ops import trivial_augment
from tlbench.preprocess import Preprocess

CROP_SCALE = {"classic": (0.5, 1.0), "strong": (0.25, 1.0)}  # as in transforms.build
CROP_RATIO = (3 / 4, 4 / 3)  # torchvision's RandomResizedCrop default
ERASE_P, ERASE_SCALE, ERASE_RATIO = 0.25, (0.02, 0.33), (0.3, 3.3)  # RandomErasing defaults


def sample_boxes(
    n: int, height: int, width: int, scale, ratio, device, tries: int = 10
) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 4) integer boxes (top, left, h, w) drawn as torchvision's RandomResizedCrop.get_params
    draws them, and a mask of which images found a box in `tries` attempts."""
    area = height * width
    target = area * torch.empty(n, tries, device=device).uniform_(*scale)
    log_r = torch.empty(n, tries, device=device).uniform_(math.log(ratio[0]), math.log(ratio[1]))
    aspect = torch.exp(log_r)
    w = torch.round(torch.sqrt(target * aspect))
    h = torch.round(torch.sqrt(target / aspect))
    ok = (w > 0) & (h > 0) & (w <= width) & (h <= height)
    first = torch.argmax(ok.int(), dim=1)  # the first try that fits, as the loop would take
    found = ok.any(dim=1)
    rows = torch.arange(n, device=device)
    h, w = h[rows, first], w[rows, first]
    top = torch.floor(torch.rand(n, device=device) * (height - h + 1))
    left = torch.floor(torch.rand(n, device=device) * (width - w + 1))
    return torch.stack([top, left, h, w], dim=1), found


def _centre_fallback(height: int, width: int, ratio) -> tuple[int, int, int, int]:
    """torchvision's fallback when no try fits: the largest centred box within the ratio range."""
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def crop_boxes(n: int, height: int, width: int, scale, device) -> torch.Tensor:
    boxes, found = sample_boxes(n, height, width, scale, CROP_RATIO, device)
    if not bool(found.all()):
        fallback = torch.tensor(_centre_fallback(height, width, CROP_RATIO), device=device)
        boxes[~found] = fallback.to(boxes.dtype)
    return boxes


def resized_crops(x: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Each image's box (top, left, h, w) resized to size x size, one roi_align for the batch."""
    top, left, h, w = boxes.unbind(1)
    rois = torch.stack(
        [torch.arange(len(x), device=x.device, dtype=x.dtype), left, top, left + w, top + h], 1
    )
    # aligned=True: box edges are pixel edges, as in interpolate(align_corners=False).
    return roi_align(x, rois.to(x.dtype), (size, size), 1.0, sampling_ratio=-1, aligned=True)


def resized_shorter_side(height: int, width: int, size: int) -> tuple[int, int]:
    """torchvision's Resize(int): the shorter side becomes `size`, the aspect ratio is kept."""
    if height <= width:
        return size, int(size * width / height)
    return int(size * height / width), size


def resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Antialiased resize of a uint8 or float batch. On CPU a uint8 batch stays uint8 (PyTorch's
    vectorised uint8 kernel, the one torchvision uses per image: ~1.3-2x faster than float here,
    and bit-identical to the per-sample path); elsewhere the batch is resized as float."""
    if tuple(x.shape[-2:]) == size:
        return x
    if not (x.dtype == torch.uint8 and x.device.type == "cpu" and mode == "bilinear"):
        x = x.float()
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest")
    out = F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=True)
    return out.clamp_(0, 255) if mode == "bicubic" else out


def centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return x[..., top : top + size, left : left + size]


def to_rgb(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x.expand(-1, 3, -1, -1)
    return x[:, :3] if x.shape[1] > 3 else x


def flip_some(x: torch.Tensor, p: float = 0.5) -> torch.Tensor:
    flip = torch.rand(len(x), device=x.device) < p
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def erase_some(x: torch.Tensor) -> torch.Tensor:
    """RandomErasing(p=0.25, value=0) per image: a random box set to 0 (after normalisation)."""
    n, _, height, width = x.shape
    boxes, found = sample_boxes(n, height, width, ERASE_SCALE, ERASE_RATIO, x.device)
    chosen = found & (torch.rand(n, device=x.device) < ERASE_P)
    top, left, h, w = (b[:, None] for b in boxes.unbind(1))
    rows = torch.arange(height, device=x.device)[None]
    cols = torch.arange(width, device=x.device)[None]
    inside_r = (rows >= top) & (rows < top + h)  # (n, H)
    inside_c = (cols >= left) & (cols < left + w)  # (n, W)
    mask = inside_r[:, :, None] & inside_c[:, None, :] & chosen[:, None, None]
    return x.masked_fill(mask[:, None], 0.0)


class BatchTransform:
    """Callable on a uint8 batch (B, C, H, W) on any device; see the module docstring."""

    def __init__(self, pre: Preprocess, augment: str, train: bool) -> None:
        self.pre, self.augment = pre, augment if train else "none"
        mean = torch.tensor(pre.mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(pre.std, dtype=torch.float32).view(1, -1, 1, 1)
        # (x / 255 - mean) / std as one multiply-add
        self.scale, self.shift = 1.0 / (255.0 * std), -mean / std

    def geometry(self, x: torch.Tensor) -> torch.Tensor:
        """uint8/float batch -> float 0..255 at crop size (resize+crop, or random crops+flips)."""
        pre, n, (height, width) = self.pre, len(x), x.shape[-2:]
        if self.augment == "none":
            x = resize(x, resized_shorter_side(height, width, pre.resize_size), pre.interpolation)
            return centre_crop(x, pre.crop_size).float()
        x = x.float()
        boxes = crop_boxes(n, height, width, CROP_SCALE[self.augment], x.device)
        if pre.interpolation == "nearest":  # roi_align is bilinear only: crop one by one
            out = [
                resize(x[i : i + 1, :, t : t + h, lf : lf + w], (pre.crop_size,) * 2, "nearest")
                for i, (t, lf, h, w) in enumerate(boxes.long().tolist())
            ]
            x = torch.cat(out)
        else:
            x = resized_crops(x, boxes, pre.crop_size)
        return flip_some(x)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = self.geometry(x)
        if self.augment == "strong":
            x = trivial_augment(to_rgb(x), self.pre.interpolation)
        if self.scale.device != x.device:  # moved once, not every batch
            self.scale, self.shift = self.scale.to(x.device), self.shift.to(x.device)
        x = to_rgb(x) * self.scale + self.shift
        if self.augment == "strong":
            x = erase_some(x)
        return x.contiguous(memory_format=torch.channels_last)
