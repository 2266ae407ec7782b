"""The entry points' one error policy and their Hydra wrappers.

A TlbenchError prints one paragraph and exits 2; any other error keeps its traceback and exits 1
(`HYDRA_FULL_ERROR=1` re-raises for Hydra to show). In a multirun a failed job is recorded in its
summary.json and the sweep goes on. Before Hydra starts, every `_target_` of the command line and
of the composed config (the `hydra` node included) is checked against the allow-list.
Why: docs/architecture.md, "Errors and entry points".
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import hydra
from omegaconf import DictConfig

from tlbench import config, summary_file
from tlbench.config import runtime as hydra_runtime
from tlbench.errors import TlbenchError, full_errors, say_error


def recorded_traceback(summary_json: Path) -> str | None:
    """`summary_json` when it holds a traceback (a failure before the run wrote it leaves none)."""
    try:
        saved = summary_file.read(summary_json).traceback
    except (OSError, ValueError):
        return None
    return str(summary_json) if saved else None


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


def _check_installed() -> None:
    config.register()
    if not config.CONF_DIR.is_dir():
        sys.exit(
            f"tlbench: its configs are missing at {config.CONF_DIR}. Install tlbench editable from "
            "its repository (`make install`, i.e. `pip install -e .`), which keeps conf/ beside "
            "the package."
        )


def main(
    config_name: str, fn: Callable[[DictConfig], object], check: Callable[[DictConfig], object]
) -> None:
    """`python -m tlbench.<evaluate|predict|export|rank>`: the command line is checked before
    Hydra writes anything (the allow-list, then the composed config and `check(cfg)`, the
    command's own checks: tlbench.inference.options.check_command_line), then Hydra runs `fn`
    under the error policy."""
    from tlbench.config import target_checks
    from tlbench.inference import options

    _check_installed()
    try:
        target_checks.check_command_line(sys.argv[1:], config_name)  # the allow-list first
        options.check_command_line(config_name, sys.argv[1:], check)
    except TlbenchError as exc:
        code = say_error(exc)
        if full_errors():  # HYDRA_FULL_ERROR=1: the traceback too, as everywhere
            raise
        sys.exit(code)
    hydra.main(version_base="1.3", config_path=str(config.CONF_DIR), config_name=config_name)(
        guarded(fn)
    )()


def train_main() -> None:
    """`python -m tlbench`: check the whole command line before Hydra writes anything (resume=,
    composition errors of every job, completed run dirs), then run each job."""
    from tlbench.config import preflight, target_checks
    from tlbench.runtime import launch, resume
    from tlbench.training.build import validate as validate_run
    from tlbench.training.job import run_job

    _check_installed()
    try:
        argv = preflight.quote_dict_keys(launch.rewrite_argv(sys.argv[1:]))
        jobs = preflight.job_overrides(argv)
        target_checks.check_command_line(argv)  # every _target_, hydra.callbacks included
        if not full_errors() and not resume.is_ddp_child():
            # compose + validate every job; a single run also gets training's own checks
            # (model, weights, strategy patterns) before Hydra creates its run dir
            preflight.preflight(argv, jobs, then=validate_run)
        argv = launch.check_targets(argv, jobs)  # dirs checked, locked and pinned
    except TlbenchError as exc:
        sys.exit(say_error(exc))
    sys.argv = [sys.argv[0], *argv]
    task = guarded(
        run_job,
        traceback_at=lambda cfg: recorded_traceback(Path(cfg.paths.output_dir) / "summary.json"),
    )
    hydra.main(version_base="1.3", config_path=str(config.CONF_DIR), config_name="train")(task)()
