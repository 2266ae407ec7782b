"""A trained checkpoint as a usable model: network, class names and preprocessing in one object.

tlbench checkpoints are self-contained: their hyper-parameters hold the model config (backbone
name and source), the strategy, `num_classes`, `class_names` and the `preprocess` recipe
(size, crop, mean/std, interpolation). Nothing else -- no config, no dataset, no pretrained
weights download -- is needed to evaluate, predict with or export one.

Files are read through tlbench.safe_load only (`torch.load(weights_only=True)`): nothing in a
file is ever executed, and a file that fails says whether it is not a PyTorch checkpoint, is
truncated or corrupt, or was refused as unsafe.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from tlbench import safe_load
from tlbench.errors import TlbenchError
from tlbench.models import checkpoint_source
from tlbench.preprocess import Preprocess
from tlbench.training.module import TransferModule

REQUIRED_HPARAMS = ("model", "strategy", "num_classes", "class_names", "preprocess")
USE_A_RUN = "point at checkpoints/best.ckpt or last.ckpt of a finished tlbench run"


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


def _refuse(path: Path, key: str, problem: str, fix: str = USE_A_RUN) -> TlbenchError:
    return TlbenchError(f"this file {problem}", key=key, value=str(path), fix=fix)


def read(path, key: str = "ckpt") -> dict:
    """The checkpoint's contents, read safely (tlbench.safe_load); a dict or an error."""
    path = Path(path)
    obj = safe_load.read(path, key, fix=USE_A_RUN)
    if not isinstance(obj, dict):
        raise _refuse(path, key, f"holds a {type(obj).__name__}, not a Lightning checkpoint")
    return obj


def hyper_parameters(obj: dict, path: Path, key: str) -> dict:
    """The tlbench hyper-parameters of a read checkpoint, checked for what inference needs."""
    hp = obj.get("hyper_parameters")
    if not isinstance(hp, dict) or "state_dict" not in obj:
        raise _refuse(
            path, key, "is a PyTorch file but not a tlbench checkpoint (no hyper_parameters)"
        )
    hp = {k: OmegaConf.to_container(v) if OmegaConf.is_config(v) else v for k, v in hp.items()}
    missing = [k for k in REQUIRED_HPARAMS if hp.get(k) is None]
    if missing:
        raise _refuse(
            path,
            key,
            f"lacks the hyper-parameters {missing}, so its classes or preprocessing are unknown",
            fix="use a checkpoint written by this version of tlbench",
        )
    if len(hp["class_names"]) != int(hp["num_classes"]):
        raise _refuse(
            path,
            key,
            f"is inconsistent: {len(hp['class_names'])} class names for {hp['num_classes']} classes",
        )
    return hp


def _architecture(model: dict) -> str:
    return f"{model.get('name')} ({model.get('source')})"


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
    architecture is built with random weights and then overwritten by the stored ones)."""
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


def check_architecture(ckpt, model: dict, key: str = "ckpt_path") -> None:
    """Refuse a checkpoint of another network than `model` (the run's model config), naming
    both, before anything is built or written."""
    path = resolve(ckpt, key)
    hp = hyper_parameters(read(path, key), path, key)
    theirs = hp["model"]
    if (theirs.get("name"), theirs.get("source")) != (model.get("name"), model.get("source")):
        raise _refuse(
            path,
            key,
            f"holds a {_architecture(theirs)}, but this run builds a {_architecture(model)}",
            fix=f"pass model={theirs.get('name')} to continue from it, or a checkpoint of "
            f"{model.get('name')}",
        )
