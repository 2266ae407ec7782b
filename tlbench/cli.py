"""The Hydra entry point shared by `python -m tlbench.evaluate | predict | export`.

Same error policy as training: a TlbenchError prints one paragraph and exits with code 2, any other
error prints its type and message and exits with 1; HYDRA_FULL_ERROR=1 shows tracebacks.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import hydra
from omegaconf import DictConfig, OmegaConf

from tlbench import config
from tlbench.errors import TlbenchError


def require(cfg: DictConfig, *keys: str, example: str) -> None:
    """Mandatory `???` keys as a one-paragraph error instead of Hydra's MissingMandatoryValue."""
    for key in keys:
        if OmegaConf.is_missing(cfg, key):
            raise TlbenchError(
                "this value is required", key=key, value="???", fix=f"e.g. {example}"
            )


def guarded(fn: Callable[[DictConfig], object]) -> Callable[[DictConfig], object]:
    def run(cfg: DictConfig):
        try:
            return fn(cfg)
        except TlbenchError as exc:
            print(f"\nError: {exc}\n", file=sys.stderr, flush=True)
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            raise SystemExit(2) from None
        except Exception as exc:
            print(
                f"\nError: {type(exc).__name__}: {exc}\n(set HYDRA_FULL_ERROR=1 to see the traceback)\n",
                file=sys.stderr,
                flush=True,
            )
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            raise SystemExit(1) from None

    return run


def main(config_name: str, fn: Callable[[DictConfig], object]) -> None:
    config.register()
    if not config.CONF_DIR.is_dir():
        sys.exit(
            f"tlbench: its configs are missing at {config.CONF_DIR}. Install tlbench editable from "
            "its repository (`make install`, i.e. `pip install -e .`)."
        )
    hydra.main(version_base="1.3", config_path=str(config.CONF_DIR), config_name=config_name)(
        guarded(fn)
    )()
