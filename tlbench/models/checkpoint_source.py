"""Your own runs (or any state-dict file) as the pretrained source of a new run.

`model.weights=<run dir | .ckpt | .pth>`: the backbone weights load, the head is rebuilt for the
new classes. Files are read with `weights_only=True`: nothing in them is executed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from tlbench import checkpoint_file, safe_load
from tlbench.errors import TlbenchError
from tlbench.models.sizes import InputSize
from tlbench.models.source import Net, Source
from tlbench.preprocess import Preprocess

NET_PREFIX = "net."  # the LightningModule keeps the network as `self.net`


def resolve(path: str | Path) -> Path:
    """A run dir means its best checkpoint (falling back to the last one)."""
    p = Path(path)
    if p.is_dir():
        found = checkpoint_file.in_run_dir(p)
        if found is None:
            raise TlbenchError(
                checkpoint_file.NO_CHECKPOINT,
                key="model.weights",
                value=str(path),
                fix=checkpoint_file.POINT_AT,
            )
        return found
    return p


def read(path: str | Path) -> dict:
    """torch.load with weights_only=True (tlbench.safe_load): a file that is not a checkpoint,
    is truncated, or needs arbitrary unpickling is refused, each with its own message."""
    return safe_load.read(
        resolve(path),
        "model.weights",
        fix="point at a tlbench run dir or a .ckpt/.pth file saved with torch.save",
    )


def stored_preprocess(path: str | Path) -> Preprocess | None:
    """The preprocessing a tlbench checkpoint was trained with, if it records one. A file that
    cannot be read safely is refused here (registry.describe runs before the run dir exists)."""
    obj = read(path)
    hp = (obj.get("hyper_parameters") if isinstance(obj, dict) else None) or {}
    return Preprocess.from_dict(hp["preprocess"]) if "preprocess" in hp else None


def _state_dict(obj: dict) -> dict[str, torch.Tensor]:
    state = obj.get("state_dict", obj)
    if any(k.startswith(NET_PREFIX) for k in state):
        state = {k[len(NET_PREFIX) :]: v for k, v in state.items() if k.startswith(NET_PREFIX)}
    return state


def load_backbone(net: nn.Module, path: str | Path, head_names: list[str]) -> str:
    """Load everything but the heads from `path` into `net`; mismatches are a clear error."""

    def is_head(key: str) -> bool:
        return any(key == h or key.startswith(h + ".") for h in head_names)

    state = {k: v for k, v in _state_dict(read(path)).items() if not is_head(k)}
    own = {k: v for k, v in net.state_dict().items() if not is_head(k)}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong_shape = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong_shape:

        def show(keys):
            return ", ".join(keys[:4]) + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")

        raise TlbenchError(
            f"the checkpoint {resolve(path)} does not fit the backbone {type(net).__name__}: "
            f"missing keys: {show(missing) or 'none'}; unexpected keys: {show(unexpected) or 'none'}; "
            f"shape mismatches: {show(wrong_shape) or 'none'}",
            key="model.weights",
            value=str(path),
            fix="use the same model= as the run that wrote the checkpoint",
        )
    net.load_state_dict(state, strict=False)
    return f"file:{resolve(path)}"


@dataclass(frozen=True)
class FromCheckpoint(Source):
    """The architecture of `inner`, random-initialised, then the backbone of the file at `path`
    (and the preprocessing it was trained with, when it records one)."""

    inner: Source
    path: str

    @property
    def prefix(self) -> str:
        return self.inner.prefix

    def check(self, name: str, weights: str | None) -> None:
        self.inner.check(name, None)

    def supports_small_input(self, name: str) -> bool:
        return self.inner.supports_small_input(name)

    def input_size(self, name: str, weights: str | None) -> InputSize:
        return self.inner.input_size(name, None)

    def preprocess(self, name: str, weights: str | None) -> Preprocess:
        stored = stored_preprocess(self.path)
        return stored if stored is not None else self.inner.preprocess(name, None)

    def constructor(self, name: str, image_size: int | None) -> Callable[[], nn.Module]:
        return self.inner.constructor(name, image_size)

    def build(
        self, name: str, weights: str | None, num_classes: int, image_size: int, small_input: bool
    ) -> Net:
        made = self.inner.build(name, None, num_classes, image_size, small_input)
        return replace(made, weights=load_backbone(made.net, self.path, made.head_names))

    def imagenet_top1(self, name: str, weights: str) -> None:
        return None  # a tlbench checkpoint was trained on its own data, not ImageNet

    def own_net(self, name: str, weights: str) -> None:
        return None  # the file's head is read directly (ranking.candidates.source_head)
