"""A trained checkpoint as a usable model: network, class names and preprocessing in one object.

tlbench checkpoints are self-contained: their hyper-parameters hold the model config, the
strategy, `num_classes`, `class_names` and the `preprocess` recipe, so nothing else (no config,
dataset or weights download) is needed to evaluate, predict with or export one. Files are read
through tlbench.safe_load only. Why: docs/architecture.md, "Reading checkpoints and weights".
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

from tlbench.checkpoint_file import (  # noqa: F401 (re-exported: inference reads through here)
    USE_A_RUN,
    _architecture,
    _refuse,
    check_architecture,
    hyper_parameters,
    read,
    resolve,
    run_dir_of,
)
from tlbench.preprocess import Preprocess
from tlbench.training.module import TransferModule


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


def _load_weights(module: TransferModule, state: dict, hp: dict, path: Path, key: str) -> None:
    """Strict load; a mismatch means the weights are of another network than the one named."""
    ours = module.state_dict()
    missing = sorted(set(ours) - set(state))
    unexpected = sorted(set(state) - set(ours))
    shapes = sorted(k for k in set(ours) & set(state) if ours[k].shape != state[k].shape)
    if missing or unexpected or shapes:
        details = "; ".join(
            f"{what} {names[:3]}" + (f" (+{len(names) - 3})" if len(names) > 3 else "")
            for what, names in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("other shapes", shapes),
            )
            if names
        )
        raise _refuse(
            path,
            key,
            f"holds weights of another architecture than the {_architecture(hp['model'])} its "
            f"hyper-parameters name ({details})",
            fix="use the checkpoint as written by tlbench, unmodified",
        )
    module.load_state_dict(state)


def load(ckpt, key: str = "ckpt") -> Loaded:
    """Rebuild the trained network from the checkpoint alone (`load_pretrained=False`: the
    architecture is built with random weights and then overwritten by the stored ones). Not
    `TransferModule.load_from_checkpoint`: it would read the file a second time with its own
    torch.load, after safe_load's checks, and report a mismatch as a bare RuntimeError."""
    path = resolve(ckpt, key)
    obj = read(path, key)
    hp = hyper_parameters(obj, path, key)
    # As Lightning's load_from_checkpoint: the hyper-parameters __init__ takes, nothing else.
    accepted = inspect.signature(TransferModule.__init__).parameters
    module = TransferModule(**{k: v for k, v in hp.items() if k in accepted}, load_pretrained=False)
    _load_weights(module, obj["state_dict"], hp, path, key)
    module = module.float().eval()
    names = [str(n) for n in hp["class_names"]]
    return Loaded(module, path, names, Preprocess.from_dict(dict(hp["preprocess"])))
