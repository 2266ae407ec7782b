"""The settings of `tlbench.evaluate | predict | export`, checked before anything is loaded.

`check_command_line` runs before Hydra starts (so before it creates a run dir), for `rank` too: it
refuses keys added with `+`, composes the overrides (Hydra's errors as one paragraph:
tlbench.config.preflight) and runs the command's `check(cfg)`, which for these three starts with
`validate(command, cfg)`: the keys against conf/<command>.yaml and the shared settings' values;
it also runs first in the command itself.
Why: docs/architecture.md, "Command options of evaluate, predict, export".
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from tlbench.config.keys import top_keys, unknown_key
from tlbench.config.values import switch, whole_number
from tlbench.data import loading
from tlbench.errors import TlbenchError, one_of

PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed")


# -- the command line, before Hydra ------------------------------------------------------------
def _check_added_keys(command: str, args: list[str]) -> None:
    """Every key these commands read is declared: a key added with `+` would be ignored
    (`+fromat=onnx` used to export TorchScript), so none is taken."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from tlbench.config.preflight import compose_error

    try:
        overrides = OverridesParser.create().parse_overrides(args)
    except Exception as exc:
        raise compose_error(exc, args, command=f"tlbench.{command}") from None
    for o in (o for o in overrides if o.is_add() and not o.key_or_group.startswith("hydra")):
        key, top = o.key_or_group, re.split(r"[./@]", o.key_or_group)[0]
        if top not in top_keys(command):
            raise unknown_key(key, top_keys(command), o.value(), f"tlbench.{command}")
        raise TlbenchError(
            f"tlbench.{command} takes no added keys",
            key=f"+{key}",
            value=o.value(),
            fix=f"set an existing key without the +, e.g. {key}={o.value()}"
            if key == top
            else f"check the keys of `{top}` with python -m tlbench.{command} --cfg job",
        )


def check_command_line(command: str, argv: list[str], check: Callable[[DictConfig], None]):
    """Refuse a bad `python -m tlbench.<command>` command line before Hydra writes anything:
    added keys, Hydra's composition errors (tlbench.config.preflight), then `check(cfg)` and the
    checkpoint, read safely, so a file that is no usable tlbench checkpoint is refused now."""
    from tlbench.config.overrides import MODE_FLAGS, split_argv
    from tlbench.config.preflight import compose_command

    flags, args = split_argv(argv)
    if flags - MODE_FLAGS:  # --help, --config-dir x, ...: Hydra's own
        return
    _check_added_keys(command, args)
    cfg = compose_command(argv, command, check)
    if cfg is None or flags & {"-m", "--multirun"}:  # a sweep: each job checks its own values
        return
    check(cfg)
    if "ckpt" in cfg:  # evaluate, predict, export (not rank)
        from tlbench.inference import checkpoint

        path = checkpoint.resolve(cfg.ckpt)
        checkpoint.hyper_parameters(checkpoint.read(path), path, "ckpt")


# -- the composed config -----------------------------------------------------------------------
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
    allowed = top_keys(command)
    for key in cfg:
        if key not in allowed:
            raise unknown_key(
                str(key), allowed, OmegaConf.select(cfg, str(key)), f"tlbench.{command}"
            )
    if "device" in cfg:
        device(cfg.device)
    if "precision" in cfg and cfg.precision not in PRECISIONS:
        raise one_of("precision", str(cfg.precision), PRECISIONS, what="precision")
    if "batch_size" in cfg:
        whole_number(cfg.batch_size, "batch_size", 64, allow_none=command == "evaluate")
    if "top_k" in cfg:
        whole_number(cfg.top_k, "top_k", 5)
    if "num_workers" in cfg and cfg.num_workers != "auto":
        whole_number(cfg.num_workers, "num_workers", 2, minimum=0)
        loading.check_workers(cfg.num_workers, key="num_workers")  # training's rule
    for key in ("progress_bar", "check", "overwrite"):
        if key in cfg:
            switch(cfg, key)
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
