"""Value ranges of the top-level switches, the optimizer, the scheduler and the trainer: each bad
value is one paragraph (key, value, what is allowed, the fix) before any data is read. The data
node's values are checked in tlbench.config.data_values.
"""

from __future__ import annotations

import math
import typing
from pathlib import Path

from omegaconf import DictConfig

from tlbench.errors import TlbenchError, nearest

# numpy's legacy seeding (which Lightning's seed_everything uses) takes 0 .. 2**32 - 1.
SEED_MAX = 2**32 - 1
# Keys of _target_ nodes whose values are checked here rather than against the constructor's
# annotation: `trainer.precision=auto` is tlbench's own choice (tlbench.training.device), which
# the run replaces with a Lightning precision before the Trainer is built.
OWN_CHECKS = frozenset({"trainer.precision"})


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def whole_number(v, key: str, example, allow_none: bool = False, minimum: int = 1) -> None:
    """A count: an integer >= `minimum` (or null)."""
    if v is None and allow_none:
        return
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise TlbenchError(
            f"must be an integer >= {minimum}" + (" or null" if allow_none else ""),
            key=key,
            value=v,
            fix=f"e.g. {key}={example}",
        )


def switch(cfg, key: str) -> None:
    if not isinstance(cfg.get(key), bool):
        raise TlbenchError(
            "must be true or false", key=key, value=cfg.get(key), allowed="true, false"
        )


def in_range(v, key: str, allowed: str, ok, example: str, why: str = "out of range") -> None:
    """`ok(v)` must hold for a finite number `v`; nan, inf and non-numbers say so, not `why`."""
    if not is_number(v) and isinstance(v, float):
        why = "not a finite number"  # nan, inf: never "negative" or "out of range"
    elif not is_number(v):
        why = "must be a number" if why == "out of range" else why
    elif ok(v):
        return
    raise TlbenchError(why, key=key, value=v, allowed=allowed, fix=f"e.g. {key}={example}")


def check_top_level(cfg: DictConfig) -> None:
    seed = cfg.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TlbenchError(
            "the seed must be an integer", key="seed", value=seed, fix="e.g. seed=42"
        )
    if not 0 <= seed <= SEED_MAX:
        raise TlbenchError(
            "the seed is out of range (numpy, which seeds the data order and augmentations, "
            "takes 32-bit seeds)",
            key="seed",
            value=seed,
            allowed=f"an integer in [0, {SEED_MAX}]",
            fix="e.g. seed=42",
        )
    for key in ("test_after_fit", "skip_completed", "overwrite"):
        if key in cfg:
            switch(cfg, key)
    if cfg.get("channels_last") not in ("auto", True, False):
        raise TlbenchError(
            "unknown channels_last setting",
            key="channels_last",
            value=cfg.get("channels_last"),
            allowed="auto, true, false",
        )
    for key, kind in (("ckpt_path", "file"), ("resume", "dir")):
        v = cfg.get(key)
        if v is None:
            continue
        p = Path(str(v)).expanduser()
        if not (p.is_file() if kind == "file" else p.is_dir()):
            raise TlbenchError(
                f"no such {'file' if kind == 'file' else 'directory'}",
                key=key,
                value=str(v),
                allowed="a Lightning .ckpt file" if kind == "file" else "an existing run dir",
                fix=f"check the path (relative paths start at {Path.cwd()})",
            )
        if key == "ckpt_path" and isinstance(cfg.get("model"), DictConfig):
            # Read safely now (not a checkpoint, truncated, unsafe, another network: one
            # paragraph) rather than deep inside trainer.fit after the data is read.
            from tlbench import checkpoint_file

            checkpoint_file.check_architecture(p, cfg.model, key="ckpt_path")


def check_optimizer(cfg: DictConfig) -> None:
    opt = cfg.get("optimizer")
    if opt is None:
        raise TlbenchError(
            "no optimizer is configured", key="optimizer", value=None, fix="optimizer=adamw"
        )
    in_range(
        opt.get("lr"),
        "optimizer.lr",
        "a finite number > 0 (typical: 1e-4 .. 1e-1)",
        lambda lr: lr > 0,
        "1e-3",
        why="the learning rate must be a positive number",
    )
    if opt.get("momentum") is not None:
        in_range(
            opt.momentum,
            "optimizer.momentum",
            "a number in [0, 1)",
            lambda m: 0 <= m < 1,
            "0.9",
            why="momentum is the share of the last step kept in the next; at 1 or more the "
            "steps grow without bound and the loss diverges",
        )
    if opt.get("weight_decay") is not None:
        in_range(
            opt.weight_decay,
            "optimizer.weight_decay",
            "a number >= 0 (negative decay pushes weights away from zero)",
            lambda w: w >= 0,
            "1e-4",
            why="weight decay cannot be negative",
        )
    if opt.get("eps") is not None:
        in_range(
            opt.eps, "optimizer.eps", "a number > 0", lambda e: e > 0, "1e-8", why="must be > 0"
        )
    betas = opt.get("betas")
    if betas is not None:
        betas = list(betas) if not isinstance(betas, (str, int, float)) else [betas]
        if len(betas) != 2 or not all(is_number(b) and 0 <= b < 1 for b in betas):
            raise TlbenchError(
                "Adam's betas are two decay rates of running averages",
                key="optimizer.betas",
                value=betas,
                allowed="two numbers in [0, 1)",
                fix="e.g. 'optimizer.betas=[0.9,0.999]' (quoted in a shell)",
            )


def check_strategy(cfg: DictConfig) -> None:
    """Learning-rate multipliers (tlbench.training.lr_groups): finite and > 0. A negative one
    climbs the loss (the audit's `lr_mult={features.conv*: -1}` trained at LR -0.001), nan and inf
    poison the first step. 0 is allowed only in `strategy.lr_mult`, where it freezes what the
    pattern matches (the classic CIFAR experiment's trick)."""
    strategy = cfg.get("strategy")
    if not isinstance(strategy, DictConfig):
        return
    why = "a learning-rate multiplier must be > 0 (0 trains nothing; a negative LR climbs the loss)"
    for name in ("head_lr_mult", "backbone_lr_mult", "layer_decay"):
        if strategy.get(name) is not None:
            example = "0.75" if name == "layer_decay" else "1.0"
            in_range(
                strategy.get(name),
                f"strategy.{name}",
                "a finite number > 0",
                lambda m: m > 0,
                example,
                why=why,
            )
    mults = strategy.get("lr_mult")
    for pattern, mult in mults.items() if isinstance(mults, DictConfig) else ():
        if not is_number(mult) or mult < 0:
            raise TlbenchError(
                "a learning-rate multiplier cannot be negative (a negative LR climbs the loss)"
                if is_number(mult)
                else "not a finite number",
                key=f"strategy.lr_mult.{pattern}",
                value=mult,
                allowed="a finite number >= 0 (0 freezes what the pattern matches)",
                fix=f"e.g. 'strategy.lr_mult={{{pattern}: 0.1}}' (quoted in a shell)",
            )


def check_scheduler(cfg: DictConfig) -> None:
    sched = cfg.get("scheduler")
    if not sched:  # scheduler=none is an empty node
        return
    if "step_size" in sched:
        whole_number(sched.get("step_size"), "scheduler.step_size", "7")
    if "gamma" in sched:
        in_range(
            sched.gamma,
            "scheduler.gamma",
            "a number > 0",
            lambda g: g > 0,
            "0.1",
            why="the LR factor must be > 0",
        )
    if "eta_min" in sched:
        in_range(
            sched.eta_min,
            "scheduler.eta_min",
            "a number >= 0",
            lambda e: e >= 0,
            "0.0",
            why="the final LR cannot be negative",
        )


def lightning_precisions() -> list:
    """The precision values Lightning's Trainer accepts, read from its signature."""
    import lightning as L

    values: list = []

    def walk(tp) -> None:
        if typing.get_origin(tp) is typing.Literal:
            values.extend(typing.get_args(tp))
        for arg in typing.get_args(tp) if typing.get_origin(tp) is not typing.Literal else ():
            walk(arg)

    walk(typing.get_type_hints(L.Trainer.__init__).get("precision"))
    return values


def check_trainer(cfg: DictConfig, machine: bool = False) -> None:
    trainer = cfg.get("trainer")
    if trainer is None:
        return
    whole_number(trainer.get("max_epochs"), "trainer.max_epochs", "10")
    precision = trainer.get("precision")
    allowed = ["auto", *lightning_precisions()]
    if str(precision) not in map(str, allowed):
        close = nearest(str(precision), [str(a) for a in allowed], n=3)
        raise TlbenchError(
            "unknown numeric precision",
            key="trainer.precision",
            value=precision,
            allowed=", ".join(dict.fromkeys(str(a) for a in allowed)),
            fix=f"did you mean {' or '.join(repr(c) for c in close)}? (auto picks bf16-mixed "
            "where the hardware runs it natively, else 32-true)",
        )
    if machine:
        check_accelerator(trainer.get("accelerator"))


def check_accelerator(accelerator) -> None:
    """The device the config asks for exists on this machine."""
    import torch

    if not isinstance(accelerator, str):
        return  # an Accelerator object: Lightning checks it
    kind = accelerator.split(":")[0].lower()
    if kind in ("gpu", "cuda") and not torch.cuda.is_available():
        raise TlbenchError(
            f"no CUDA GPU is visible on this machine (torch {torch.__version__}, built for CUDA "
            f"{torch.version.cuda or 'none'}; torch.cuda.is_available() is False)",
            key="trainer.accelerator",
            value=accelerator,
            allowed="auto, cpu (or gpu on a machine with a visible CUDA GPU)",
            fix="use trainer=default (auto) or trainer=cpu here; on a GPU machine check "
            "nvidia-smi, CUDA_VISIBLE_DEVICES and that torch was installed with CUDA",
        )
    mps = getattr(torch.backends, "mps", None)
    if kind == "mps" and not (mps and mps.is_available()):
        raise TlbenchError(
            "Apple's MPS device is not available on this machine",
            key="trainer.accelerator",
            value=accelerator,
            allowed="auto, cpu",
            fix="use trainer=default (auto) or trainer=cpu",
        )
