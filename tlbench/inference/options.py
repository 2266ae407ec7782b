"""The settings of `tlbench.evaluate | predict | export`, checked before anything is loaded.

`check_command_line` runs before Hydra starts (so before it creates a run dir): it composes the
overrides and refuses an unknown key with close matches, never Hydra's "add it with `+`". Each
command's `check(cfg)` starts with `validate(command, cfg)`: the keys against
conf/<command>.yaml and the shared settings' values; it also runs first in the command itself.
Why: docs/architecture.md, "Command options of evaluate, predict, export".
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from tlbench.data import loading
from tlbench.errors import TlbenchError, did_you_mean, one_of

PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed")
EXAMPLES = {"batch_size": 64, "top_k": 5, "num_workers": 2}
FLAGS = ("--help", "-h", "--cfg", "-c", "--info", "--hydra-help", "--shell", "--version")


@functools.cache
def allowed_keys(command: str) -> frozenset[str]:
    """Top-level keys of conf/<command>.yaml and the groups of its defaults list."""
    from tlbench.config import CONF_DIR

    base = OmegaConf.load(CONF_DIR / f"{command}.yaml")
    groups = set()
    for entry in base.get("defaults", []):
        if isinstance(entry, DictConfig):
            groups |= {str(k).split("@")[0].split("/")[0] for k in entry}
    return frozenset({str(k) for k in base if k not in ("defaults", "hydra")} | groups - {"hydra"})


# What people type for these commands' keys, by analogy with other tools (`run=` for a run dir).
SYNONYMS = {
    "ckpt": ("run", "run_dir", "checkpoint", "model", "weights", "path"),
    "input": ("inputs", "images", "image", "files", "folder", "dir"),
    "output": ("out", "output_dir", "dest"),
    "split": ("subset",),
}


def unknown_key(command: str, key: str, allowed, value=None) -> TlbenchError:
    name = key.rsplit(".", 1)[-1]
    meant = [k for k, words in SYNONYMS.items() if name in words and k in allowed]
    hint = did_you_mean(name, allowed, meant)
    return TlbenchError(
        f"unknown key for tlbench.{command}",
        key=key,
        value=value,
        allowed=", ".join(sorted(allowed)),
        fix=f"check the spelling ({hint})",
    )


# -- the command line, before Hydra ------------------------------------------------------------
def _parse(args: list[str]):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        return OverridesParser.create().parse_overrides(args)
    except Exception as exc:
        raise TlbenchError(
            f"the command line cannot be parsed ({' '.join(str(exc).split())})",
            key="overrides",
            value=" ".join(args),
            fix="write each setting as key=value; quote values with spaces or brackets",
        ) from None


def _check_override_keys(command: str, overrides) -> None:
    allowed = allowed_keys(command)
    for o in overrides:
        key = o.key_or_group
        if key.startswith("hydra"):
            continue
        top = re.split(r"[./@]", key)[0]
        if top not in allowed:
            raise unknown_key(command, key, allowed, o.value())
        if o.is_add():  # every key these commands read is declared: `+` only adds ignored keys
            raise TlbenchError(
                f"tlbench.{command} takes no added keys",
                key=f"+{key}",
                value=o.value(),
                fix=f"set an existing key without the +, e.g. {key}=..."
                if key == top
                else f"check the keys of `{top}` with python -m tlbench.{command} --cfg job",
            )


def _composition_error(command: str, exc: Exception, args: list[str]) -> TlbenchError:
    from hydra.errors import MissingConfigException

    from tlbench.config import compose

    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file and exc.options:
        group = str(exc.missing_cfg_file).rsplit("/", 1)[0]
        value = next((a.split("=", 1)[1] for a in args if a.startswith(f"{group}=")), None)
        return one_of(group, value or str(exc.missing_cfg_file), exc.options, f"{group} config")
    match = re.search(r"Could not override '([^']+)'", str(exc))
    if match:
        key = match.group(1)
        rest = [a for a in args if not a.startswith(f"{key}=")]
        try:
            parent = OmegaConf.select(compose(rest, config_name=command), key.rpartition(".")[0])
        except Exception:  # another override is wrong too: suggest from the top level
            parent = None
        allowed = (
            set(parent) - {"_target_"} if isinstance(parent, DictConfig) else allowed_keys(command)
        )
        value = next((a.split("=", 1)[1] for a in args if a.startswith(f"{key}=")), None)
        return unknown_key(command, key, allowed, value)
    return TlbenchError(
        f"the command line cannot be turned into a config ({' '.join(str(exc).split())})",
        key="overrides",
        value=" ".join(args),
        fix=f"see python -m tlbench.{command} --help",
    )


def check_command_line(command: str, argv: list[str], check: Callable[[DictConfig], None]):
    """Refuse a bad `python -m tlbench.<command>` command line before Hydra writes anything."""
    from tlbench.config import compose

    if any(a.split("=")[0] in FLAGS for a in argv):
        return
    flags = [a for a in argv if a.startswith("-")]
    if any(f not in ("-m", "--multirun") for f in flags):  # --config-dir x, ...: Hydra's own
        return
    args = [a for a in argv if not a.startswith("-")]
    _check_override_keys(command, _parse(args))
    if flags:  # --multirun: values may be sweeps; Hydra expands them
        return
    try:
        cfg = compose(args, config_name=command)
    except Exception as exc:
        raise _composition_error(command, exc, args) from None
    check(cfg)
    # The checkpoint is read (safely) here too, so that a file that is not a usable tlbench
    # checkpoint is refused before Hydra creates a run dir; the command reads it again.
    from tlbench.inference import checkpoint

    path = checkpoint.resolve(cfg.ckpt)
    checkpoint.hyper_parameters(checkpoint.read(path), path, "ckpt")


# -- the composed config -----------------------------------------------------------------------
def _count(cfg: DictConfig, key: str, minimum: int, allow_none: bool = False) -> None:
    v = cfg.get(key)
    if v is None and allow_none:
        return
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise TlbenchError(
            f"must be an integer >= {minimum}" + (" or null" if allow_none else ""),
            key=key,
            value=v,
            fix=f"e.g. {key}={EXAMPLES.get(key, minimum)}",
        )


def _switch(cfg: DictConfig, key: str) -> None:
    if not isinstance(cfg.get(key), bool):
        raise TlbenchError("must be true or false", key=key, value=cfg.get(key))


def _tolerance(cfg: DictConfig, key: str) -> None:
    v = cfg.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise TlbenchError(
            "must be a number >= 0 (an allowed difference between logits)",
            key=key,
            value=v,
            fix=f"e.g. {key}=1e-4",
        )


def _output(cfg: DictConfig, key: str = "output") -> None:
    v = cfg.get(key)
    if v is None:
        return
    p = Path(str(v)).expanduser()
    if p.is_dir():
        raise TlbenchError(
            "is an existing directory; this setting names the file to write",
            key=key,
            value=str(v),
            fix=f"give a file path, e.g. {key}={p / 'name.ext'}, or leave it null (the run dir)",
        )
    parent = next((q for q in p.parents if q.exists()), None)
    if parent is not None and not parent.is_dir():
        raise TlbenchError(
            f"cannot be created: {parent} is a file", key=key, value=str(v), fix="choose a path"
        )
    refuse_existing(cfg, p, key=key)


def refuse_existing(cfg: DictConfig, *paths: Path, key: str = "output") -> None:
    """An existing file is replaced only with `overwrite=true`: a typo in output= never silently
    destroys someone's predictions or model."""
    if cfg.get("overwrite") is True:
        return
    for p in paths:
        if p.exists() or p.is_symlink():
            raise TlbenchError(
                f"{p} already exists; tlbench does not replace a file unless told to",
                key=key,
                value=str(cfg.get(key)),
                fix="give another path, or add overwrite=true to replace it",
            )


def device(value) -> torch.device:
    """`device=` as a torch.device that exists on this machine."""
    allowed = "auto, cpu, cuda, cuda:<n>, mps"
    if value in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(str(value))
    except (RuntimeError, ValueError):
        raise TlbenchError("unknown device", key="device", value=value, allowed=allowed) from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (dev.index or 0) >= count:
            raise TlbenchError(
                f"this machine has {count} CUDA device(s)"
                + ("" if count else f" (torch {torch.__version__}, no GPU visible)"),
                key="device",
                value=value,
                allowed=allowed,
                fix="use device=cpu, or device=auto (CUDA when present)",
            )
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise TlbenchError(
                "MPS is not available here", key="device", value=value, fix="use device=auto"
            )
    elif dev.type != "cpu":
        raise TlbenchError("unsupported device", key="device", value=value, allowed=allowed)
    return dev


def validate(command: str, cfg: DictConfig) -> None:
    """Keys and shared values of a composed evaluate/predict/export config."""
    allowed = allowed_keys(command)
    for key in cfg:
        if key not in allowed:
            raise unknown_key(command, str(key), allowed, OmegaConf.select(cfg, str(key)))
    if "device" in cfg:
        device(cfg.device)
    if "precision" in cfg and cfg.precision not in PRECISIONS:
        raise one_of("precision", str(cfg.precision), PRECISIONS, what="precision")
    if "batch_size" in cfg:
        _count(cfg, "batch_size", 1, allow_none=command == "evaluate")
    if "top_k" in cfg:
        _count(cfg, "top_k", 1)
    if "num_workers" in cfg and cfg.num_workers != "auto":
        _count(cfg, "num_workers", 0)
        loading.check_workers(cfg.num_workers, key="num_workers")  # training's rule
    for key in ("progress_bar", "check", "overwrite"):
        if key in cfg:
            _switch(cfg, key)
    for key in ("atol", "rtol"):
        if key in cfg:
            _tolerance(cfg, key)
    if "output" in cfg:
        _output(cfg)


def inference_precision(dev: torch.device, precision: str = "auto") -> str:
    """Training's precision choice for inference (bf16 autocast on CPUs that have it);
    `precision=32-true` gives exact fp32 logits."""
    from tlbench.training.device import choose_precision

    return choose_precision(precision or "auto", dev.type)[0]
