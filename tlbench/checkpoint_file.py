"""A tlbench checkpoint file, found and read safely, and its hyper-parameters checked (floor 1:
config validation checks `ckpt_path=` with it before any data is read; models, inference and
ranking read checkpoints through it). Files are read through tlbench.safe_load only
(`torch.load(weights_only=True)`): nothing in a file is ever executed, and a file that fails
says whether it is not a PyTorch checkpoint, is truncated or corrupt, or was refused as unsafe.
Rebuilding the trained network from one is tlbench.inference.checkpoint's."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from tlbench import safe_load
from tlbench.errors import TlbenchError

REQUIRED_HPARAMS = ("model", "strategy", "num_classes", "class_names", "preprocess")
USE_A_RUN = "point at checkpoints/best.ckpt or last.ckpt of a finished tlbench run"
NO_CHECKPOINT = "the run directory holds no checkpoints/best.ckpt or checkpoints/last.ckpt"
POINT_AT = "point at a finished tlbench run dir or directly at a .ckpt/.pth file"


def run_dir_of(ckpt: Path) -> Path:
    """The run dir a checkpoint file belongs to (`<run>/checkpoints/<name>.ckpt`), else its folder."""
    ckpt = Path(ckpt)
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent


def in_run_dir(run_dir: Path) -> Path | None:
    """A run dir's best checkpoint, else its last one, else None."""
    for candidate in ("checkpoints/best.ckpt", "checkpoints/last.ckpt"):
        if (Path(run_dir) / candidate).is_file():
            return Path(run_dir) / candidate
    return None


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
        found = in_run_dir(p)
        if found is None:
            raise TlbenchError(NO_CHECKPOINT, key=key, value=str(ckpt), fix=POINT_AT)
        return found
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
