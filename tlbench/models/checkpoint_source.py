"""Your own runs (or any state-dict file) as the pretrained source of a new run.

`model.weights=<run dir | .ckpt | .pth>`: the backbone weights load, the head is rebuilt for the
new classes. Files are read with `weights_only=True`: nothing in them is executed.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from tlbench import checkpoint_file, safe_load
from tlbench.errors import TlbenchError
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
