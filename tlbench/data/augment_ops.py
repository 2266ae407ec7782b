"""TrivialAugmentWide on a batch, one op and magnitude per image (Müller & Hutter, 2021), with
torchvision's op list and magnitude bins (v2 `TrivialAugmentWide`, 31 bins, random sign), so the
`strong` preset keeps its per-image randomness on the batched path.

Images are float 0..255 RGB (B, 3, H, W); each op runs once on the sub-batch that drew it (14
small batch ops at most). Geometric ops share one `affine_grid` + `grid_sample` (fill 0).
Details: docs/architecture.md, "Input pipeline".
"""

from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

BINS = 31
OPS = (
    "identity", "shear_x", "shear_y", "translate_x", "translate_y", "rotate", "brightness",
    "color", "contrast", "sharpness", "posterize", "solarize", "autocontrast", "equalize",
)  # fmt: skip
# Largest magnitude of each op (torchvision's TrivialAugmentWide._AUGMENTATION_SPACE); the bin
# picks a fraction of it, and ops in SIGNED get a random sign.
MAX = {"shear_x": 0.99, "shear_y": 0.99, "translate_x": 32.0, "translate_y": 32.0}
MAX |= {"rotate": 135.0, "brightness": 0.99, "color": 0.99, "contrast": 0.99, "sharpness": 0.99}
SIGNED = set(MAX)
GRAY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights


def _gray(x: torch.Tensor) -> torch.Tensor:
    # Weights as Python numbers: torch.tensor(GRAY, device=) would be a blocking host-to-device
    # copy on every call (a GPU sync: the step path never waits for the device).
    r, g, b = x.unbind(1)
    return (r * GRAY[0] + g * GRAY[1] + b * GRAY[2]).unsqueeze(1)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (factor * x + (1 - factor) * other).clamp_(0, 255)


def _sharpen_base(x: torch.Tensor) -> torch.Tensor:
    """torchvision's sharpness "degenerate" image: a 3x3 smoothing, borders left as they are."""
    k = torch.ones(3, 3, device=x.device, dtype=x.dtype)  # filled on the device: no copy
    k[1, 1] = 5.0
    k /= 13
    smooth = F.conv2d(x, k.expand(x.shape[1], 1, 3, 3), groups=x.shape[1])
    out = x.clone()
    out[..., 1:-1, 1:-1] = smooth
    return out


def _affine(x: torch.Tensor, op: str, m: torch.Tensor, mode: str) -> torch.Tensor:
    """Shear/translate/rotate each image by its own magnitude `m` (pixels/degrees/shear)."""
    n, _, h, w = x.shape
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    # affine_grid maps output to input in [-1, 1] coordinates: the inverse of the image motion.
    if op == "shear_x":  # torchvision shears about the top-left corner: x_in = x_out - s * y_out
        theta[:, 0, 1] = -m * h / w
        theta[:, 0, 2] = -m * h / w
    elif op == "shear_y":
        theta[:, 1, 0] = -m * w / h
        theta[:, 1, 2] = -m * w / h
    elif op == "translate_x":
        theta[:, 0, 2] = -2 * m / w
    elif op == "translate_y":
        theta[:, 1, 2] = -2 * m / h
    else:  # rotate counter-clockwise by m degrees about the centre
        a = m * math.pi / 180
        theta[:, 0, 0], theta[:, 0, 1] = torch.cos(a), -torch.sin(a) * h / w
        theta[:, 1, 0], theta[:, 1, 1] = torch.sin(a) * w / h, torch.cos(a)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    sample = "nearest" if mode == "nearest" else "bilinear"
    return F.grid_sample(x, grid, mode=sample, padding_mode="zeros", align_corners=False)


def apply_op(x: torch.Tensor, op: str, m: torch.Tensor, mode: str) -> torch.Tensor:
    """One op on a float 0..255 batch; `m` holds one magnitude per image."""
    f = m.view(-1, 1, 1, 1)
    if op in ("shear_x", "shear_y", "translate_x", "translate_y", "rotate"):
        return _affine(x, op, m, mode)
    if op == "brightness":
        return (x * (1 + f)).clamp_(0, 255)
    if op == "color":
        return _blend(x, _gray(x), 1 + f)
    if op == "contrast":
        return _blend(x, _gray(x).mean(dim=(1, 2, 3), keepdim=True), 1 + f)
    if op == "sharpness":
        return _blend(x, _sharpen_base(x), 1 + f)
    if op == "posterize":
        step = 2.0 ** (8 - f)
        return torch.floor(x.round() / step) * step
    if op == "solarize":
        return torch.where(x >= f * 255, 255 - x, x)
    if op == "autocontrast":
        lo = x.amin(dim=(2, 3), keepdim=True)
        hi = x.amax(dim=(2, 3), keepdim=True)
        span = (hi - lo).clamp_min(1e-6)
        return torch.where(hi > lo, (x - lo) * (255 / span), x).clamp_(0, 255)
    if op == "equalize":
        return TF.equalize(x.round().clamp(0, 255).to(torch.uint8)).float()
    return x


def magnitudes(op: str, bins: torch.Tensor) -> torch.Tensor:
    """Per-image magnitude for `op` from its bin index 0..30 (random sign where signed)."""
    if op == "posterize":  # 8 bits at bin 0 down to 2 bits at bin 30
        return 8 - torch.round(bins / ((BINS - 1) / 6))
    if op == "solarize":  # threshold from 1.0 (nothing changes) down to 0.0
        return 1.0 - bins / (BINS - 1)
    if op not in MAX:
        return torch.zeros_like(bins)
    m = bins / (BINS - 1) * MAX[op]
    sign = torch.where(torch.rand_like(m) < 0.5, -1.0, 1.0)
    return m * sign


def trivial_augment(x: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Each image of the batch gets one uniformly drawn op at a uniformly drawn magnitude bin.

    The ops are drawn on the host (Python's `random`, which the run seeds like torch's): each
    op's images are then known without reading anything back. Drawn on the device, finding them
    (`nonzero(which == k)`, 13 times a batch) made the host wait for the GPU each time.
    The magnitudes stay on the device; indices go over with a non-blocking copy."""
    n = len(x)
    which = [random.randrange(len(OPS)) for _ in range(n)]
    bins = torch.randint(BINS, (n,), device=x.device).float()
    out = x.clone()
    for k, op in enumerate(OPS):
        rows = [i for i, w in enumerate(which) if w == k]
        if op == "identity" or not rows:
            continue
        idx = torch.tensor(rows).to(x.device, non_blocking=True)
        m = magnitudes(op, bins.index_select(0, idx))
        out.index_copy_(0, idx, apply_op(x.index_select(0, idx), op, m, mode).to(x.dtype))
    return out
