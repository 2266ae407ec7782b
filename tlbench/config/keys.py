"""Which keys a config may have, and the types of their values, read from where they are declared.

The config files (conf/train.yaml, conf/paths, conf/model), tlbench.config.schema for `strategy`,
and each `_target_` node's constructor signature and simple annotations. Anything the checker does
not understand is accepted, so it never blocks a valid config. `_target_`s are only imported
through the allow-list of tlbench.config.allow_list. Why: docs/architecture.md, "Configuration".
"""

from __future__ import annotations

import functools
import inspect
import types
import typing

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from tlbench.errors import TlbenchError, did_you_mean

TARGET_GROUPS = ("data", "optimizer", "scheduler", "trainer")  # single nodes with a _target_
TARGET_MAPS = ("logger", "callbacks")  # name -> node with a _target_ (or null)


@functools.cache
def top_keys(config_name: str) -> frozenset[str]:
    """The top-level keys of conf/<config_name>.yaml and the groups of its defaults list."""
    from tlbench import config

    base = OmegaConf.load(config.CONF_DIR / f"{config_name}.yaml")
    groups = set()
    for entry in base.get("defaults", []):
        if isinstance(entry, (dict, DictConfig)):
            groups |= {str(k).split("@")[0].split("/")[0] for k in entry}
    keys = {str(k) for k in base if k not in ("defaults", "hydra")}
    return frozenset(keys | groups - {"hydra", "experiment", "override hydra"})


@functools.cache
def allowed_keys() -> dict[str, set[str]]:
    """Allowed keys read from the shipped config files, so a key added there is allowed here."""
    from tlbench import config
    from tlbench.config import app, schema

    model_keys = set(app.model_node("x", "torchvision"))
    for f in (config.CONF_DIR / "model").glob("**/*.yaml"):
        model_keys |= {k for k in OmegaConf.load(f) if k != "defaults"}
    # Experiment presets (@package _global_) may define helper keys of their own at the top.
    helpers = set()
    for f in (config.CONF_DIR / "experiment").glob("**/*.yaml"):
        helpers |= {str(k) for k in OmegaConf.load(f) if k not in ("defaults", "hydra")}
    return {
        "": set(top_keys("train")) | helpers,
        "paths": set(OmegaConf.load(config.CONF_DIR / "paths" / "default.yaml")),
        "model": model_keys,
        "strategy": set(schema.keys(schema.StrategyConfig)),
    }


# What people type for a key, by analogy with other tools (`run=` for evaluate's run dir).
SYNONYMS = {
    "ckpt": ("run", "run_dir", "checkpoint", "model", "weights", "path"),
    "input": ("inputs", "images", "image", "files", "folder", "dir"),
    "output": ("out", "output_dir", "dest"),
    "split": ("subset",),
}


def unknown_key(key: str, allowed, value, command: str | None = None) -> TlbenchError:
    """`command`: the entry point whose keys these are (`tlbench`, `tlbench.export`). Training
    takes a key added with + where a component accepts it; evaluate, predict, export take none."""
    name = key.rsplit(".", 1)[-1]
    hint = did_you_mean(
        name, allowed, [k for k, w in SYNONYMS.items() if name in w and k in allowed]
    )
    entry = command not in (None, "tlbench")
    problem = f"unknown key for {command}" if entry else "unknown config key"
    fix = f"check the spelling ({hint})"
    fix += "" if entry else "; a key added with + must be one the component accepts"
    fix += f"; every key: `python -m {command} --cfg job`" if command else ""
    return TlbenchError(problem, key=key, value=value, allowed=", ".join(sorted(allowed)), fix=fix)


def raw(node: DictConfig, key):
    """A value for messages, without resolving interpolations (which may fail outside Hydra)."""
    try:
        return OmegaConf.to_container(node, resolve=False)[key]
    except Exception:
        return "?"


def value(node: DictConfig, name: str, key: str):
    """`node[name]` resolved, as plain Python; an interpolation that fails is a TlbenchError."""
    try:
        v = node[name]
    except OmegaConfBaseException as exc:
        raise TlbenchError(
            f"this value cannot be resolved ({type(exc).__name__}: {str(exc).splitlines()[0]})",
            key=f"{key}.{name}",
            value=raw(node, name),
            fix="check the ${...} interpolation it uses",
        ) from None
    return OmegaConf.to_container(v, resolve=True) if isinstance(v, (DictConfig, ListConfig)) else v


def check_strategy_keys(strategy) -> None:
    """A strategy node's keys against StrategyConfig (tlbench/config/schema.py)."""
    from tlbench.config import schema

    known = schema.keys(schema.StrategyConfig)
    unknown = sorted(set(strategy) - known)
    if unknown:
        raise TlbenchError(
            f"unknown strategy key(s) {unknown}",
            key="strategy",
            value=strategy.get("name"),
            allowed=", ".join(sorted(known)),
            fix="remove or correct the misspelt key(s)",
        )


def check_keys(cfg: DictConfig) -> None:
    """Unknown keys at the top level, in `paths`, `model` and `strategy`."""
    schema = allowed_keys()
    for key in cfg:
        if key not in schema[""]:
            raise unknown_key(str(key), schema[""], raw(cfg, key))
    if isinstance(cfg.get("strategy"), DictConfig):
        check_strategy_keys(cfg.strategy)  # its own message: "unknown strategy key"
    for group in ("paths", "model"):
        node = cfg.get(group)
        if isinstance(node, DictConfig):
            for key in node:
                if key not in schema[group]:
                    raise unknown_key(f"{group}.{key}", schema[group], raw(node, key))


def check_strategy_types(cfg: DictConfig) -> None:
    """Each strategy value against the annotation of its StrategyConfig field."""
    from tlbench.config import schema

    node = cfg.get("strategy")
    if not isinstance(node, DictConfig):
        return
    hints = schema.types(schema.StrategyConfig)
    for name in node:
        if name in hints and not OmegaConf.is_missing(node, name):
            check_type(value(node, name, "strategy"), hints[name], f"strategy.{name}", "strategy")


# -- _target_ nodes ---------------------------------------------------------------------------
def locate(target: str, key: str):
    """The class a `_target_` names, imported only through the allow-list (tlbench.config.allow_list:
    a target that is not allowed or does not exist is a TlbenchError; an import error inside an
    allowed module is not the config's mistake and keeps its traceback)."""
    from tlbench.config import allow_list

    return allow_list.resolve(target, key)


def parameters(obj) -> tuple[dict[str, inspect.Parameter], dict[str, object], bool]:
    """Named parameters (following **kwargs through the class hierarchy), their type hints, and
    whether arbitrary keywords are accepted in the end."""
    params: dict[str, inspect.Parameter] = {}
    hints: dict[str, object] = {}
    fns = (
        [c.__init__ for c in inspect.getmro(obj) if "__init__" in vars(c)]
        if inspect.isclass(obj)
        else [obj]
    )
    for fn in fns:
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            return params, hints, True
        try:
            fn_hints = typing.get_type_hints(fn)
        except Exception:  # unresolvable forward references: no type checks for this one
            fn_hints = {}
        var_kw = False
        for name, p in sig.parameters.items():
            if p.kind is p.VAR_KEYWORD:
                var_kw = True
            elif p.kind is not p.VAR_POSITIONAL and name != "self" and name not in params:
                params[name] = p
                if name in fn_hints:
                    hints[name] = fn_hints[name]
        if not var_kw:
            return params, hints, False
        if fn is object.__init__:
            break
    return params, hints, True


def check_target_node(node, key: str, own_checks: frozenset[str] = frozenset()) -> None:
    """Keys and types of one `_target_` node against its constructor. `own_checks`: dotted keys
    whose values tlbench checks itself (tlbench.config.values.CHECKS), skipped here."""
    if not isinstance(node, DictConfig):
        raise TlbenchError(
            "this config node must be a mapping with a _target_",
            key=key,
            value=node,
            fix=f"choose one of the {key.split('.')[0]} configs",
        )
    from tlbench.config import allow_list
    from tlbench.config.instantiate import target_of

    target = target_of(node, key)
    obj = locate(target, key)
    for inner_key, inner in allow_list.walk(node, key):  # Hydra would build the nested ones too
        locate(inner, inner_key)
    params, hints, open_ended = parameters(obj)
    for name in node:
        if str(name).startswith("_") and str(name).endswith("_"):
            continue  # _target_, _partial_, _convert_, _recursive_, _args_
        if name not in params:
            if open_ended:
                continue
            raise unknown_key(f"{key}.{name}", set(params), raw(node, name))
        if f"{key}.{name}" in own_checks or name not in hints:
            continue
        check_type(value(node, name, key), hints[name], f"{key}.{name}", target)


def check_type(v, tp, key: str, owner: str) -> None:
    if matches(v, tp) is not False:
        return
    listed = _is_list_type(tp) and isinstance(v, str)
    raise TlbenchError(
        f"wrong type ({type(v).__name__}) for {owner.rsplit('.', 1)[-1]}({key.rsplit('.', 1)[-1]}=...)"
        + (": this key takes a list, even of one item" if listed else ""),
        key=key,
        value=v,
        allowed=describe(tp),
        fix=f"write it as a list: '{key}=[{v}]' (quoted in a shell)"
        if listed
        else f"give {key} a value of that type",
    )


def _is_list_type(tp) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_is_list_type(a) for a in typing.get_args(tp))
    return origin in (list, tuple, set, frozenset) or tp in (list, tuple)


def matches(v, tp) -> bool | None:
    """True / False when the annotation settles it, None when this checker cannot tell."""
    if tp is typing.Any or tp is inspect.Parameter.empty:
        return True
    if tp is type(None) or tp is None:
        return v is None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        results = [matches(v, a) for a in typing.get_args(tp)]
        return True if True in results else (None if None in results else False)
    if origin is typing.Literal:
        return v in typing.get_args(tp)
    if tp is bool:
        return isinstance(v, bool)
    if tp is int:
        return isinstance(v, int) and not isinstance(v, bool)
    if tp is float:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if tp is str:
        return isinstance(v, str)
    if origin in (list, tuple, set, frozenset) or tp in (list, tuple):
        # A string where a list goes is refused, never iterated character by character.
        return False if isinstance(v, (str, dict)) else (isinstance(v, (list, tuple)) or None)
    if origin is dict or tp is dict:
        return isinstance(v, dict) or None
    if v is None:
        return False if isinstance(tp, type) and tp in (int, float, str, bool) else None
    return None


def describe(tp) -> str:
    return str(tp).replace("typing.", "").replace("<class '", "").replace("'>", "")
