"""Batched preprocessing on whatever device trains: uint8 (B, C, H, W) in, normalised float
RGB (B, 3, crop, crop) out, channels_last -- the same recipe as `tlbench.data.transforms.build`,
done as a handful of batch operations instead of ~6 small ops per image in Python.
eval / augment=none: resize + centre crop; classic / strong: a random resized crop and a flip
per image, drawn as torchvision draws them and resampled by two batched matrix products;
strong adds TrivialAugmentWide (`augment_ops`) and RandomErasing (p=0.25, value 0).
Why and how exact: docs/architecture.md, "Input pipeline".
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch

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
    """Boxes for `n` images; those that found none get the centre fallback. Selected with
    `where` against Python numbers, always: asking whether any image needs the fallback
    (`bool(found.all())`) or building it with `torch.tensor(..., device=)` would wait for the
    device every batch."""
    boxes, found = sample_boxes(n, height, width, scale, CROP_RATIO, device)
    fallback = _centre_fallback(height, width, CROP_RATIO)
    cols = [torch.where(found, c, float(v)) for c, v in zip(boxes.unbind(1), fallback, strict=True)]
    return torch.stack(cols, dim=1)


def _kernel(t: torch.Tensor, mode: str) -> torch.Tensor:
    """PyTorch's antialias filters: triangle (bilinear), Keys cubic with a = -0.5 (bicubic)."""
    t = t.abs()
    if mode == "bicubic":
        a = -0.5
        near = ((a + 2) * t - (a + 3)) * t * t + 1
        far = (((t - 5) * t + 8) * t - 4) * a
        return torch.where(t < 1, near, torch.where(t < 2, far, torch.zeros_like(t)))
    return (1 - t).clamp_min(0)


def axis_weights(start, length, size: int, n: int, mode: str) -> torch.Tensor:
    """(B, size, n) weights: output pixel i of image b samples the input pixels
    [start[b], start[b] + length[b]) of an axis n pixels long, as interpolate(antialias=True)
    on the cropped image would (window widened by the scale when shrinking)."""
    start, length = start.double(), length.double()
    scale = (length / size)[:, None, None]
    i = torch.arange(size, device=start.device, dtype=torch.float64)[None, :, None]
    j = torch.arange(n, device=start.device, dtype=torch.float64)[None, None, :]
    lo, hi = start[:, None, None], (start + length)[:, None, None]
    if mode == "nearest":  # interpolate(mode="nearest"): floor(i * scale)
        src = torch.minimum(lo + torch.floor(i * scale), hi - 1)
        return (j == src).float()
    centre = lo + (i + 0.5) * scale
    w = _kernel((j + 0.5 - centre) / scale.clamp_min(1.0), mode) * ((j >= lo) & (j < hi))
    return (w / w.sum(-1, keepdim=True)).float()


def resample(x: torch.Tensor, wy: torch.Tensor, wx: torch.Tensor) -> torch.Tensor:
    """out[b] = wy[b] @ x[b] @ wx[b]^T per channel. Float (B, C, H, W) in, (B, C, Y, X) out
    with channels_last memory. Two bmm's (a broadcast matmul would copy wx once per output row):
    across the width on the small source, then down the height, ending in (B, Y, X*C)."""
    n, c, height, width = x.shape
    size_y, size_x = wy.shape[1], wx.shape[1]
    src = x.permute(0, 3, 2, 1).reshape(n, width, height * c)  # (B, W, H*C)
    cols = torch.bmm(wx, src).view(n, size_x, height, c)  # (B, X, H, C)
    cols = cols.transpose(1, 2).reshape(n, height, size_x * c)  # (B, H, X*C), a small copy
    out = torch.bmm(wy, cols).view(n, size_y, size_x, c)  # (B, Y, X, C)
    return out.permute(0, 3, 1, 2)  # NCHW shape, channels_last memory: no copy


def resized_crops(
    x: torch.Tensor, boxes: torch.Tensor, size: int, mode: str = "bilinear", flip=None
) -> torch.Tensor:
    """Each image's box (top, left, h, w) resized to size x size (and mirrored where `flip`)."""
    _, _, height, width = x.shape
    top, left, h, w = boxes.to(x.device).unbind(1)
    wy = axis_weights(top, h, size, height, mode).to(x.dtype)  # (B, size, H)
    wx = axis_weights(left, w, size, width, mode).to(x.dtype)  # (B, size, W)
    if flip is not None:
        wx = torch.where(flip[:, None, None], wx.flip(1), wx)
    return resample(x, wy, wx)


def resize_and_centre_crop(x: torch.Tensor, pre: Preprocess) -> torch.Tensor:
    """The eval geometry (shorter side to resize_size, centre crop_size) as one resampling:
    the crop just keeps the middle rows of the resize weights."""
    n, _, height, width = x.shape
    out_h, out_w = resized_shorter_side(height, width, pre.resize_size)
    weights = []
    for length, out in ((height, out_h), (width, out_w)):
        full = torch.full((n,), float(length), device=x.device)
        w = axis_weights(torch.zeros_like(full), full, out, length, pre.interpolation)
        start = int(round((out - pre.crop_size) / 2.0))  # torchvision's CenterCrop offset
        weights.append(w[:, start : start + pre.crop_size].to(x.dtype))
    return resample(x, *weights)


def resized_shorter_side(height: int, width: int, size: int) -> tuple[int, int]:
    """torchvision's Resize(int): the shorter side becomes `size`, the aspect ratio is kept."""
    if height <= width:
        return size, int(size * width / height)
    return int(size * height / width), size


def to_rgb(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x.expand(-1, 3, -1, -1)
    return x[:, :3] if x.shape[1] > 3 else x


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


@contextmanager
def cpu_threads(device: torch.device, threads: int = 1):
    """Run the CPU transform on one intra-op thread. Its ops are small (a 64-image batch is a few
    MB), and with a busy CPU a 2-thread parallel region waits for its slowest thread (measured:
    BENCHMARKS.md, "Input pipeline"). On an idle machine the cost of one thread is small next to the
    network's own step (which keeps all threads). Other devices are left alone."""
    if device.type != "cpu" or torch.get_num_threads() <= threads:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class BatchTransform:
    """Callable on a uint8 batch (B, C, H, W) on any device; see the module docstring."""

    def __init__(self, pre: Preprocess, augment: str, train: bool) -> None:
        self.pre, self.augment = pre, augment if train else "none"
        mean = torch.tensor(pre.mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(pre.std, dtype=torch.float32).view(1, -1, 1, 1)
        # (x / 255 - mean) / std as one multiply-add
        self.scale, self.shift = 1.0 / (255.0 * std), -mean / std

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale.device != x.device:  # moved once, not every batch
            self.scale, self.shift = self.scale.to(x.device), self.shift.to(x.device)
        return to_rgb(x) * self.scale + self.shift

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with cpu_threads(x.device):
            return self._apply(x)

    def _apply(self, x: torch.Tensor) -> torch.Tensor:
        pre, n, (height, width) = self.pre, len(x), x.shape[-2:]
        if self.augment == "none":
            if pre.interpolation == "bicubic":  # overshoots: clamp to 0..255 before normalising
                x = self.normalise(resize_and_centre_crop(x.float(), pre).clamp(0, 255))
                return x.contiguous(memory_format=torch.channels_last)
            # Normalise first (exact: weights sum to 1) -- on the small source images.
            return resize_and_centre_crop(self.normalise(x.float()), pre)
        boxes = crop_boxes(n, height, width, CROP_SCALE[self.augment], x.device)
        flip = torch.rand(n, device=x.device) < 0.5
        if self.augment == "classic" and pre.interpolation != "bicubic":
            # Normalise first (exact: weights sum to 1) -- on 32 px, not 224 px images.
            return resized_crops(
                self.normalise(x.float()), boxes, pre.crop_size, pre.interpolation, flip
            )
        x = resized_crops(to_rgb(x.float()), boxes, pre.crop_size, pre.interpolation, flip)
        x = x.clamp(0, 255)  # bicubic overshoots; TrivialAugment expects 0..255
        if self.augment == "strong":
            x = trivial_augment(x, pre.interpolation)
        x = self.normalise(x)
        if self.augment == "strong":
            x = erase_some(x)
        return x.contiguous(memory_format=torch.channels_last)
