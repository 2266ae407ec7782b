"""The entry points' one error policy and their Hydra wrappers.

Every entry point (`python -m tlbench`, `tlbench.evaluate | predict | export`) reports errors the
same way: a TlbenchError (a user error) prints one paragraph and exits with code 2; any other
error prints its type and message, where its traceback went, and exits with 1;
`HYDRA_FULL_ERROR=1` re-raises so the traceback shows. In a multirun a failed job is recorded
(its summary.json says why) and the sweep goes on.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from tlbench import config
from tlbench.config import runtime as hydra_runtime
from tlbench.errors import TlbenchError


def full_errors() -> bool:
    """`HYDRA_FULL_ERROR=1`: show tracebacks instead of one paragraph."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def say_error(exc: BaseException, traceback_at: str | None = None) -> int:
    """Print `exc` the tlbench way and return the exit code it deserves (2 user, 1 bug)."""
    if isinstance(exc, TlbenchError):
        print(f"\nError: {exc}\n", file=sys.stderr, flush=True)
        return 2
    where = f"the traceback is in {traceback_at}; " if traceback_at else ""
    print(
        f"\nError: {type(exc).__name__}: {exc}\n({where}set HYDRA_FULL_ERROR=1 to see it here)\n",
        file=sys.stderr,
        flush=True,
    )
    return 1


def guarded(
    fn: Callable[[DictConfig], object], traceback_at: Callable[[DictConfig], str] | None = None
) -> Callable[[DictConfig], object]:
    """Wrap a Hydra task function in the error policy. In a multirun a failed job returns None
    (it has recorded its failure) so the sweep goes on."""

    def run(cfg: DictConfig):
        try:
            return fn(cfg)
        except Exception as exc:
            code = say_error(exc, traceback_at(cfg) if traceback_at else None)
            if full_errors():
                raise
            if hydra_runtime.is_multirun():
                return None
            raise SystemExit(code) from None

    return run


def require(cfg: DictConfig, *keys: str, example: str) -> None:
    """Mandatory `???` keys as a one-paragraph error instead of Hydra's MissingMandatoryValue."""
    for key in keys:
        if OmegaConf.is_missing(cfg, key):
            raise TlbenchError(
                "this value is required", key=key, value="???", fix=f"e.g. {example}"
            )


def _check_installed() -> None:
    config.register()
    if not config.CONF_DIR.is_dir():
        sys.exit(
            f"tlbench: its configs are missing at {config.CONF_DIR}. Install tlbench editable from "
            "its repository (`make install`, i.e. `pip install -e .`), which keeps conf/ beside "
            "the package."
        )


def main(config_name: str, fn: Callable[[DictConfig], object]) -> None:
    """`python -m tlbench.<evaluate|predict|export>`."""
    _check_installed()
    hydra.main(version_base="1.3", config_path=str(config.CONF_DIR), config_name=config_name)(
        guarded(fn)
    )()


def train_main() -> None:
    """`python -m tlbench`: check the whole command line before Hydra writes anything (resume=,
    composition errors of every job, completed run dirs), then run each job."""
    from tlbench.config import preflight
    from tlbench.runtime import launch, resume
    from tlbench.training.job import run_job

    _check_installed()
    try:
        argv = preflight.quote_dict_keys(launch.rewrite_argv(sys.argv[1:]))
        jobs = preflight.job_overrides(argv)
        if not full_errors() and not resume.is_ddp_child():
            preflight.preflight(argv, jobs)  # compose + validate every job
        launch.check_targets(argv, jobs)
    except TlbenchError as exc:
        sys.exit(say_error(exc))
    sys.argv = [sys.argv[0], *argv]
    task = guarded(run_job, traceback_at=lambda cfg: f"{Path(cfg.paths.output_dir)}/summary.json")
    hydra.main(version_base="1.3", config_path=str(config.CONF_DIR), config_name="train")(task)()
