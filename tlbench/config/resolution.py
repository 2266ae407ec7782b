"""OmegaConf's errors as tlbench's one-paragraph errors, and a check that resolves every
interpolation of a composed config before Hydra starts. tlbench.config.preflight.compose_error is
the one place Hydra's and OmegaConf's errors are translated; it calls omegaconf_error.
"""

from __future__ import annotations

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import (
    InterpolationResolutionError,
    MissingMandatoryValue,
    OmegaConfBaseException,
)

from tlbench.config.overrides import parse
from tlbench.errors import TlbenchError


def omegaconf_error(exc: OmegaConfBaseException, overrides: list[str]) -> TlbenchError:
    """OmegaConf's errors met while reading a composed config: an interpolation that does not
    resolve (`${nonexistent.key}`, `${oc.env:X}` with X unset), a required key deleted with `~`."""
    key = getattr(exc, "full_key", None) or None
    typed = [o for o in overrides if parse(o)[0] == key]
    value = typed[-1].partition("=")[2] if typed and "=" in typed[-1] else (typed or [None])[-1]
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, InterpolationResolutionError):
        return TlbenchError(
            f"this value refers to something that does not resolve ({first})",
            key=key,
            value=value,
            fix="${a.b} must name an existing key (see `python -m tlbench --cfg job`); "
            "${oc.env:NAME} needs NAME set in the environment, or a default: ${oc.env:NAME,0.001}",
        )
    if isinstance(exc, MissingMandatoryValue):
        return TlbenchError("this value is required", key=key, value="???", fix=f"set {key}=...")
    return TlbenchError(
        f"tlbench needs this key, and the config has none ({first})",
        key=key,
        value=value,
        fix="do not delete it with ~; give it a value instead (see `python -m tlbench --cfg job`)",
    )


def check_resolves(cfg: DictConfig) -> None:
    """Resolve every interpolation of the job's config now, except Hydra's own `${hydra:...}`
    (known only inside the job): a bad one raises OmegaConf's error, which omegaconf_error turns
    into one paragraph, instead of a traceback from wherever the job first reads the key."""

    def walk(node) -> None:
        for k in node.keys() if isinstance(node, DictConfig) else range(len(node)):
            if k == "hydra" and node is cfg:
                continue
            if OmegaConf.is_interpolation(node, k):
                try:
                    node[k]
                except InterpolationResolutionError as exc:
                    if "HydraConfig was not set" not in str(exc):
                        raise
                continue
            child = node._get_node(k)
            if isinstance(child, (DictConfig, ListConfig)) and not child._is_missing():
                walk(child)

    walk(cfg)
