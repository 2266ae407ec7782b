"""The one place that turns config nodes into objects: Hydra's instantiate behind the allow-list of
tlbench.config.allow_list, with the error policy of tlbench.cli.

A config mistake (a `_target_` not allowed or missing, keys that do not bind to the constructor's
signature) becomes a one-paragraph TlbenchError BEFORE anything is called; whatever the
constructor itself raises keeps its type, message and traceback (a TlbenchError stays one).
Why: docs/architecture.md, "Configuration".
"""

from __future__ import annotations

import inspect

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from tlbench.config import allow_list
from tlbench.errors import TlbenchError


def target_of(node, key: str) -> str:
    """The node's `_target_`, or an error naming the key that lacks one."""
    target = node.get("_target_")
    if not target:
        raise TlbenchError(
            "the config node has no _target_",
            key=f"{key}._target_",
            value=None,
            fix=f"add `_target_: <class path>` to the {key} config",
        )
    return target


def _resolved(node: DictConfig, key: str) -> dict:
    """The node as Hydra will build it, interpolations resolved: a node an interpolation creates
    (`${oc.create:...}`) is checked like any other."""
    try:
        return OmegaConf.to_container(node, resolve=True)
    except OmegaConfBaseException as exc:
        raise TlbenchError(
            f"this config node cannot be resolved ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0]})",
            key=key,
            value=OmegaConf.to_container(node, resolve=False),
            fix="check the ${...} interpolations it uses",
        ) from None


def check_binds(node: dict, obj, key: str, extra: dict | None = None) -> None:
    """The node's keys (and tlbench's own `extra` keyword arguments) against `obj`'s signature,
    before it is called. A key of the config that does not bind, or an argument the config must
    give and does not, is the config's mistake; an `extra` argument that does not bind is
    tlbench's bug and is left to fail as one."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):  # no signature to check against (some builtins)
        return
    names = {k: None for k in node if not (str(k).startswith("_") and str(k).endswith("_"))}
    args = node.get("_args_") or []
    bind = sig.bind_partial if node.get("_partial_") else sig.bind
    try:
        bind(*args, **names, **dict.fromkeys(extra or {}))
        return
    except TypeError as exc:
        problem = str(exc)
    try:
        sig.bind_partial(*args, **names)
    except TypeError:
        pass
    else:
        if "missing a required argument" not in problem:
            return  # tlbench's own arguments do not fit: a bug, it fails with its traceback
    target = node["_target_"]
    raise TlbenchError(
        f"could not build {target} ({problem})",
        key=key,
        value=target,
        fix=f"check the arguments under `{key}` against {target}'s signature",
    )


def instantiate(node, key: str, **kwargs):
    """Instantiate `node` (dict or DictConfig with `_target_`), naming `key` in any error."""
    if node is None:
        raise TlbenchError(
            "this config node is empty", key=key, value=None, fix=f"choose a {key} config"
        )
    if not isinstance(node, DictConfig):
        node = OmegaConf.create(node)
    target_of(node, key)
    plain = _resolved(node, key)
    # Every target first (Hydra builds the nested ones too), then the arguments of each.
    found = [(k, n, allow_list.resolve(n["_target_"], k)) for k, n in allow_list.nodes(plain, key)]
    for inner_key, inner, obj in found:
        check_binds(inner, obj, inner_key, kwargs if inner is plain else None)
    try:
        return hydra.utils.instantiate(OmegaConf.create(plain), _convert_="all", **kwargs)
    except InstantiationException as exc:
        if exc.__cause__ is None:  # Hydra's own complaint about the node's structure
            raise TlbenchError(
                f"could not build {plain['_target_']} ({' '.join(str(exc).split())})",
                key=key,
                value=plain["_target_"],
                fix=f"check the `_..._` keys under `{key}`",
            ) from None
        # What the constructor raised, as it raised it (its traceback goes along).
        raise exc.__cause__ from None
