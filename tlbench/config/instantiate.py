"""The one place that turns config nodes into objects (Hydra's instantiate behind an allow-list).

Only targets from these module prefixes are built, so a config or checkpoint cannot make tlbench
import and run arbitrary code; extend ALLOWED_PREFIXES deliberately.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, ListConfig, OmegaConf

from tlbench.errors import TlbenchError

ALLOWED_PREFIXES = (
    "tlbench.",
    "torch.optim.",
    "lightning.pytorch.",
    "timm.optim.",
    "timm.scheduler.",
)


def _nested_targets(node, key: str):
    """(dotted key, value) of every `_target_` below the top level of `node`."""
    # Unresolved: an interpolation only a running Hydra job can resolve (${hydra:...}) is no
    # _target_ and must not stop the search (config validation runs before the job exists).
    items = node.items_ex(resolve=False) if isinstance(node, DictConfig) else enumerate(node)
    for k, v in items:
        if isinstance(v, (DictConfig, ListConfig)):
            if isinstance(v, DictConfig) and "_target_" in v:
                yield f"{key}.{k}._target_", v.get("_target_")
            yield from _nested_targets(v, f"{key}.{k}")


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


def instantiate(node, key: str, **kwargs):
    """Instantiate `node` (dict or DictConfig with `_target_`), naming `key` in any error."""
    if node is None:
        raise TlbenchError(
            "this config node is empty", key=key, value=None, fix=f"choose a {key} config"
        )
    if not isinstance(node, DictConfig):
        node = OmegaConf.create(node)
    target = target_of(node, key)
    for inner_key, inner in _nested_targets(node, key):  # Hydra builds nested _target_s too
        if not str(inner).startswith(ALLOWED_PREFIXES):
            target, key = inner, inner_key.rsplit("._target_", 1)[0]
            break
    if not str(target).startswith(ALLOWED_PREFIXES):
        raise TlbenchError(
            "this _target_ is not in the allow-list of modules tlbench instantiates",
            key=f"{key}._target_",
            value=target,
            allowed=", ".join(p + "*" for p in ALLOWED_PREFIXES),
            fix="use a class from an allowed module, or add its module to tlbench.config.instantiate.ALLOWED_PREFIXES",
        )
    try:
        return hydra.utils.instantiate(node, _convert_="all", **kwargs)
    except Exception as exc:
        cause = exc.__cause__ or exc
        if isinstance(cause, TlbenchError):
            raise cause from None
        raise TlbenchError(
            f"could not build {target} ({type(cause).__name__}: {cause})",
            key=key,
            value=target,
            fix=f"check the arguments under `{key}` against {target}'s signature",
        ) from exc
