"""The `_target_` allow-list: what a config may make tlbench (or Hydra) build, checked on the
OBJECT a target names, never on its spelling.

A target is resolved step by step, importing only modules inside MODULES, and the object found
must be a class that CLASSES allows, defined (`__module__`) where CLASSES says; no function is
allowed. Extend CLASSES deliberately. `check_config` applies the list to every `_target_` of a
composed config, the `hydra` node included. Why: docs/architecture.md, "Configuration".
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re

from omegaconf import OmegaConf

from tlbench.errors import TlbenchError, nearest

MODULES = (
    "tlbench",
    "torch.optim",
    "lightning.pytorch",
    "lightning.fabric.plugins.environments",
    "timm.optim",
    "timm.scheduler",
    "hydra._internal.core_plugins",
    "hydra_plugins",
)
# (what it is, its base class, the modules the class must be defined in)
LIGHTNING = ("lightning.pytorch",)
HYDRA = ("hydra._internal", "hydra_plugins")
CLASSES = (
    ("optimizer", "torch.optim:Optimizer", ("torch.optim", "timm.optim")),
    ("LR scheduler", "torch.optim.lr_scheduler:LRScheduler", ("torch.optim",)),
    ("timm scheduler", "timm.scheduler.scheduler:Scheduler", ("timm.scheduler",)),
    ("Trainer", "lightning.pytorch:Trainer", LIGHTNING),
    (
        "callback",
        "lightning.pytorch.callbacks:Callback",
        (*LIGHTNING, "tlbench.training.callbacks"),
    ),
    ("logger", "lightning.pytorch.loggers:Logger", LIGHTNING),
    ("strategy", "lightning.pytorch.strategies:Strategy", LIGHTNING),
    ("accelerator", "lightning.pytorch.accelerators:Accelerator", LIGHTNING),
    ("precision plugin", "lightning.pytorch.plugins:Precision", LIGHTNING),
    ("profiler", "lightning.pytorch.profilers:Profiler", LIGHTNING),
    (
        "cluster environment",
        "lightning.pytorch.plugins.environments:ClusterEnvironment",
        ("lightning.fabric.plugins.environments", "lightning.pytorch.plugins.environments"),
    ),
    ("DataModule", "lightning.pytorch:LightningDataModule", ("tlbench.data",)),
    ("Hydra callback", "hydra.experimental.callback:Callback", ("tlbench.report",)),
    ("Hydra launcher", "hydra.plugins.launcher:Launcher", HYDRA),
    ("Hydra sweeper", "hydra.plugins.sweeper:Sweeper", HYDRA),
)
DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")
ALLOWED = (
    "classes only: optimizers (torch.optim, timm.optim), LR schedulers (torch.optim.lr_scheduler, "
    "timm.scheduler), lightning.pytorch's Trainer, callbacks, loggers, strategies, accelerators, "
    "precision plugins, profilers and cluster environments, tlbench's DataModules "
    "(tlbench.data) and callbacks (tlbench.training.callbacks, tlbench.report), Hydra's "
    "launchers and sweepers"
)


def _inside(path: str, modules=MODULES) -> bool:
    return any(path == m or path.startswith(m + ".") for m in modules)


def refused(target, key: str, why: str = "") -> TlbenchError:
    return TlbenchError(
        "this _target_ is not in the allow-list of classes tlbench instantiates, so it is never "
        f"imported or called{why}",
        key=f"{key}._target_",
        value=target,
        allowed=ALLOWED,
        fix="use one of those classes by its dotted path, or extend the list in "
        "tlbench/config/allow_list.py (CLASSES) deliberately",
    )


def _missing(module, name: str, target: str, key: str) -> TlbenchError:
    classes = [n for n, v in vars(module).items() if inspect.isclass(v) and not n.startswith("_")]
    close = nearest(name, classes, n=3)
    return TlbenchError(
        f"this _target_ does not exist ({module.__name__} has no {name})",
        key=f"{key}._target_",
        value=target,
        fix="check the dotted path of the class"
        + (f" (did you mean {' or '.join(close)}?)" if close else ""),
    )


def _find(path: str):
    """The module at `path` (inside MODULES), or None when there is none; an import error raised
    inside a module that exists is not the config's mistake and keeps its traceback."""
    try:
        return importlib.import_module(path)
    except ModuleNotFoundError as exc:
        if exc.name and (path == exc.name or path.startswith(exc.name + ".")):
            return None
        raise


def _what(obj) -> str:
    if inspect.ismodule(obj):
        return f"the module {obj.__name__}"
    if inspect.isclass(obj):
        return f"the class {obj.__module__}.{obj.__qualname__}"
    return f"a {type(obj).__name__}, not a class"


@functools.cache
def _base(spec: str):
    module, _, name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError:  # an optional library (timm) that is not installed
        return None


def kind_of(obj) -> str | None:
    """What CLASSES calls `obj`, or None when it is not allowed."""
    if not inspect.isclass(obj):
        return None
    for what, base, where in CLASSES:
        if _inside(str(obj.__module__), where):
            cls = _base(base)
            if cls is not None and issubclass(obj, cls):
                return what
    return None


def resolve(target, key: str):
    """The class `target` names, when the allow-list allows it (else a TlbenchError): imported
    and walked only through modules inside MODULES."""
    text = target if isinstance(target, str) else ""
    if not DOTTED.fullmatch(text) or not _inside(text):
        raise refused(target, key)
    root = max((m for m in MODULES if _inside(text, (m,))), key=len)
    obj = _find(root)
    if obj is None:
        raise TlbenchError(
            f"this _target_ needs {root}, which is not installed",
            key=f"{key}._target_",
            value=target,
            fix=f"install {root.split('.')[0]} or choose another class",
        )
    for part in text[len(root) :].split(".")[1:]:
        if not inspect.ismodule(obj) or not _inside(obj.__name__):
            raise refused(target, key, f" (it goes through {_what(obj)})")
        found = getattr(obj, part, None)
        if found is None and _inside(f"{obj.__name__}.{part}"):
            found = _find(f"{obj.__name__}.{part}")  # a submodule not imported yet
        if found is None:
            raise _missing(obj, part, text, key)
        obj = found
    if kind_of(obj) is None:
        raise refused(target, key, f" ({text} is {_what(obj)})")
    return obj


def nodes(node, key: str = ""):
    """(dotted key, node) of `node` and of every node below it that has a `_target_`: plain
    containers or configs, read unresolved (an interpolation is no class name: it is refused)."""
    if OmegaConf.is_config(node):
        node = OmegaConf.to_container(node, resolve=False)
    if isinstance(node, dict):
        if "_target_" in node:
            yield key, node
        items = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return
    for k, v in items:
        if isinstance(v, (dict, list)):
            yield from nodes(v, f"{key}.{k}" if key else str(k))


def walk(node, key: str = ""):
    """(dotted key, `_target_` value) of every node `nodes` finds."""
    return ((k, n["_target_"]) for k, n in nodes(node, key))


def check_config(cfg) -> None:
    """Every `_target_` of a composed config (its `hydra` node included) against the list."""
    for key, target in walk(cfg):
        resolve(target, key)
    callbacks = OmegaConf.select(cfg, "hydra.callbacks") if OmegaConf.is_config(cfg) else None
    if callbacks is None:
        return
    # Hydra builds these itself, resolved: what an interpolation turns into is checked too.
    try:
        resolved = OmegaConf.to_container(callbacks, resolve=True)
    except Exception:
        raise TlbenchError(
            "hydra.callbacks may not use interpolations that are known only once the job runs",
            key="hydra.callbacks",
            value=OmegaConf.to_container(callbacks, resolve=False),
            fix="write the callbacks' values out",
        ) from None
    for key, target in walk(resolved, "hydra.callbacks"):
        resolve(target, key)
