"""A trained checkpoint as a usable model: network, class names and preprocessing in one object.

tlbench checkpoints are self-contained: their hyper-parameters hold the model config (backbone
name and source), the strategy, `num_classes`, `class_names` and the `preprocess` recipe
(size, crop, mean/std, interpolation). Nothing else -- no config, no dataset, no pretrained
weights download -- is needed to evaluate, predict with or export one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf

from tlbench.errors import TlbenchError
from tlbench.models import checkpoint_source
from tlbench.preprocess import Preprocess
from tlbench.training.device import choose_precision
from tlbench.training.module import TransferModule

REQUIRED_HPARAMS = ("model", "strategy", "num_classes", "class_names", "preprocess")
AUTOCAST = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


@dataclass
class Loaded:
    module: TransferModule  # in eval mode, fp32, on CPU
    path: Path  # the .ckpt file actually read
    class_names: list[str]  # index order of the logits
    preprocess: Preprocess  # exactly what the network saw during training

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def describe(self) -> dict:
        """What a user (or a deployment sidecar) needs to know about this model."""
        hp = self.module.hparams
        return {
            "checkpoint": str(self.path),
            "model": dict(hp["model"]),
            "strategy": hp["strategy"].get("name"),
            "class_names": list(self.class_names),
            "num_classes": self.num_classes,
            "preprocess": self.preprocess.to_dict(),
        }


def resolve(ckpt, key: str = "ckpt") -> Path:
    """`ckpt=` (a .ckpt file or a run dir) -> the file, or a one-paragraph error."""
    if ckpt is None or str(ckpt).strip() in ("", "???"):
        raise TlbenchError(
            "a checkpoint is required",
            key=key,
            value=ckpt,
            fix=f"pass {key}=<run dir> (its checkpoints/best.ckpt is used) or {key}=<file.ckpt>",
        )
    p = Path(str(ckpt)).expanduser()
    if not p.exists():
        raise TlbenchError(
            "no such file or directory",
            key=key,
            value=str(ckpt),
            allowed="a tlbench run dir (outputs/runs/<timestamp>) or a .ckpt file inside its checkpoints/",
            fix=f"check the path (relative paths start at {Path.cwd()})",
        )
    if p.is_dir():
        try:
            return checkpoint_source.resolve(p)
        except TlbenchError as exc:
            raise TlbenchError(exc.problem, key=key, value=str(ckpt), fix=exc.fix) from None
    return p


def load(ckpt, key: str = "ckpt") -> Loaded:
    """Rebuild the trained network from the checkpoint alone (`load_pretrained=False`: the
    architecture is built with random weights and then overwritten by the stored ones)."""
    path = resolve(ckpt, key)
    try:
        module = TransferModule.load_from_checkpoint(
            path, load_pretrained=False, weights_only=True, map_location="cpu"
        )
    except TlbenchError:
        raise
    except Exception as exc:  # not a Lightning checkpoint, not ours, truncated, unsafe pickle ...
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise TlbenchError(
            f"{path} is not a loadable tlbench checkpoint ({type(exc).__name__}: {first})",
            key=key,
            value=str(ckpt),
            fix="point at checkpoints/best.ckpt or last.ckpt of a finished tlbench run",
        ) from None
    hp = module.hparams
    missing = [k for k in REQUIRED_HPARAMS if hp.get(k) is None]
    if missing:
        raise TlbenchError(
            f"{path} lacks the hyper-parameters {missing}, so its classes or preprocessing are unknown",
            key=key,
            value=str(ckpt),
            fix="use a checkpoint written by this version of tlbench",
        )
    names = [str(n) for n in hp["class_names"]]
    if len(names) != int(hp["num_classes"]):
        raise TlbenchError(
            f"{path} is inconsistent: {len(names)} class names for {hp['num_classes']} classes",
            key=key,
            value=str(ckpt),
            fix="use a checkpoint written by tlbench",
        )
    pre = hp["preprocess"]
    pre = OmegaConf.to_container(pre) if OmegaConf.is_config(pre) else dict(pre)
    module = module.float().eval()
    return Loaded(module, path, names, Preprocess.from_dict(pre))


def pick_device(device: str = "auto") -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise TlbenchError(
            "unknown device", key="device", value=device, allowed="auto, cpu, cuda, cuda:<n>, mps"
        ) from None


def autocast(device: torch.device, precision: str = "auto"):
    """The inference counterpart of training's precision choice (bf16 on CPUs that have it: ~6x
    faster here); `precision=32-true` gives exact fp32 logits."""
    chosen, _ = choose_precision(precision or "auto", device.type)
    dtype = AUTOCAST.get(chosen)
    if chosen not in (*AUTOCAST, "32-true"):
        raise TlbenchError(
            "unknown precision",
            key="precision",
            value=precision,
            allowed="auto, 32-true, bf16-mixed, 16-mixed",
        )
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None), chosen


def json_number(x: float | None) -> float | None:
    """JSON has no NaN: undefined metrics (0/0) become null."""
    return None if x is None or math.isnan(x) else float(x)
