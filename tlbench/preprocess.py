"""The preprocessing contract between a pretrained source and the data pipeline.

A pretrained source knows how its images were prepared (torchvision's `WeightsEnum.transforms`,
timm's `pretrained_cfg`); `training/run.py` hands that to the DataModule, which never imports
models.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    crop_size: int = 224  # the network's input side, in pixels
    resize_size: int = 256  # shorter side before the centre crop (eval) ...
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"  # bilinear | bicubic | nearest

    def at_size(self, size: int | None) -> Preprocess:
        """The same recipe at another input side, keeping the resize/crop ratio (256/224)."""
        if size is None or size == self.crop_size:
            return self
        ratio = self.resize_size / self.crop_size
        return replace(self, crop_size=int(size), resize_size=int(round(size * ratio)))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Preprocess:
        d = dict(d)
        d["mean"], d["std"] = tuple(d["mean"]), tuple(d["std"])
        return cls(**d)
