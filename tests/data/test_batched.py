"""The batched on-device transforms against the per-sample torchvision path they replace."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from torchvision.transforms import v2 as T

from tlbench.data import augment_ops, batched, transforms
from tlbench.data.digits import DigitsDataModule
from tlbench.preprocess import Preprocess

PRE = Preprocess(
    crop_size=48, resize_size=55, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)
)


def _images(n: int, channels: int, side: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    smooth = torch.rand(n, channels, side // 4, side // 4, generator=g)  # photo-like, not noise
    up = torch.nn.functional.interpolate(smooth, size=(side, side), mode="bilinear")
    return (up * 255).round().to(torch.uint8)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
@pytest.mark.parametrize("channels,side", [(3, 32), (1, 28), (1, 8), (3, 80)])
def test_eval_transform_matches_the_per_sample_path(channels, side, mode):
    pre = replace(PRE, interpolation=mode)
    x = _images(12, channels, side)
    per_sample = torch.stack([transforms.build(pre, "none", train=False)(img) for img in x])
    out = batched.BatchTransform(pre, "classic", train=False)(x)  # eval ignores augment
    assert out.shape == per_sample.shape == (12, 3, 48, 48)
    assert out.is_contiguous(memory_format=torch.channels_last)
    # The per-sample path resizes uint8 in fixed point and rounds: within 1.5 grey levels
    # (a grey level is 1/255/std after normalisation); on average far closer.
    level = 1 / 255 / min(PRE.std)
    assert (out - per_sample).abs().max() <= 1.5 * level
    assert (out - per_sample).abs().mean() <= 0.4 * level  # rounding alone averages 0.25


def _box_stats(boxes: torch.Tensor, area: float) -> tuple[np.ndarray, np.ndarray]:
    _, _, h, w = boxes.double().unbind(1)
    return (h * w / area).numpy(), torch.log(w / h).numpy()


@pytest.mark.parametrize("scale", [(0.5, 1.0), (0.25, 1.0), (0.08, 1.0)])
def test_random_crops_have_torchvisions_distribution(scale):
    """Same scale/aspect statistics as RandomResizedCrop.get_params, drawn image by image."""
    torch.manual_seed(0)
    n, height, width = 4000, 32, 40
    ours = batched.crop_boxes(n, height, width, scale, "cpu")
    ref = torch.tensor(
        [
            T.RandomResizedCrop.get_params(torch.empty(3, height, width), scale, batched.CROP_RATIO)
            for _ in range(n)
        ],
        dtype=torch.float64,
    )
    area = height * width
    (s1, r1), (s2, r2) = _box_stats(ours, area), _box_stats(ref, area)
    for a, b in ((s1, s2), (r1, r2)):
        assert abs(a.mean() - b.mean()) < 0.02 and abs(a.std() - b.std()) < 0.02
        assert abs(np.quantile(a, 0.1) - np.quantile(b, 0.1)) < 0.03
        assert abs(np.quantile(a, 0.9) - np.quantile(b, 0.9)) < 0.03
    top, left, h, w = ours.unbind(1)
    assert bool(((top >= 0) & (left >= 0) & (top + h <= height) & (left + w <= width)).all())
    assert s1.min() >= scale[0] * 0.9 and r1.min() >= math.log(3 / 4) - 0.1
    # positions are uniform over where the box fits
    frac = (top / (height - h).clamp_min(1)).numpy()[(height - h).numpy() > 4]
    assert 0.4 < frac.mean() < 0.6


def test_each_image_gets_its_own_crop_and_flip():
    torch.manual_seed(1)
    one = _images(1, 3, 32)
    x = one.expand(64, -1, -1, -1).contiguous()  # 64 copies of one image
    out = batched.BatchTransform(PRE, "classic", train=True)(x)
    distinct = {tuple(o.flatten()[:200].round(decimals=3).tolist()) for o in out}
    assert len(distinct) > 50


@pytest.mark.parametrize("mode", ["bilinear", "bicubic", "nearest"])
@pytest.mark.parametrize("side,size", [(32, 48), (80, 48)])  # enlarging and shrinking
def test_crop_resize_equals_cropping_then_resizing_each_image(mode, side, size):
    """The matmul resampling reproduces crop + interpolate(antialias=True) image by image."""
    torch.manual_seed(3)
    x = _images(6, 3, side).float()
    boxes = batched.crop_boxes(6, side, side, (0.25, 1.0), "cpu")
    flip = torch.tensor([False, True] * 3)
    ours = batched.resized_crops(x, boxes, size, mode, flip)
    for k, (t, lf, h, w) in enumerate(boxes.long().tolist()):
        crop = x[k : k + 1, :, t : t + h, lf : lf + w]
        kw = {} if mode == "nearest" else {"antialias": True, "align_corners": False}
        ref = torch.nn.functional.interpolate(crop, size=(size, size), mode=mode, **kw)[0]
        ref = ref.flip(-1) if flip[k] else ref
        assert (ours[k] - ref).abs().max() < 1e-2, (mode, k)


def test_strong_preset_ops_keep_range_and_shape():
    torch.manual_seed(2)
    x = _images(32, 3, 24).float()
    bins = torch.full((32,), 20.0)
    for op in augment_ops.OPS:
        out = augment_ops.apply_op(x, op, augment_ops.magnitudes(op, bins), "bilinear")
        assert out.shape == x.shape and out.min() >= 0 and out.max() <= 255, op
    below = x.clamp(max=254)  # threshold 1.0 = 255: as torchvision, only pure white inverts
    assert torch.equal(augment_ops.apply_op(below, "solarize", torch.ones(32), "bilinear"), below)
    out = batched.BatchTransform(PRE, "strong", train=True)(_images(32, 1, 28))
    assert out.shape == (32, 3, 48, 48) and torch.isfinite(out).all()
    erased = (out == 0).flatten(1).all(dim=0)  # no pixel is erased in every image
    assert not bool(erased.any())


def test_datamodule_transforms_batches_after_transfer():
    """Lightning calls on_after_batch_transfer with the uint8 batch on the training device."""
    dm = DigitsDataModule(image_size=32, batch_size=16, preprocess=PRE, augment="classic")
    raw = next(iter(dm.train_dataloader()))
    assert raw[0].dtype == torch.uint8 and raw[0].shape == (16, 1, 8, 8)
    x, y = dm.on_after_batch_transfer(raw, 0)  # no trainer: the eval transform
    assert x.shape == (16, 3, 32, 32) and x.dtype == torch.float32 and torch.equal(y, raw[1])
    per_sample = torch.stack([dm.dataset("train", train=False).transform(i) for i in raw[0]])
    assert (x - per_sample).abs().max() <= 1 / 255 / min(PRE.std) + 1e-5
