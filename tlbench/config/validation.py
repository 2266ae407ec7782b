"""Whole-config validation: every problem a config can have, found before any data is read or any
model is built, each reported as one paragraph (key, value, what is allowed, the fix).

`validate_config(cfg)` runs the checks cheapest first: keys, `_target_`s and types
(config.keys), values (config.values), monitors (config.monitors), a freeze schedule's switches
(config.phases), the data node (config.data_values). The model and the strategy's patterns follow
in training's validate. Why: docs/architecture.md, "Configuration".
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from tlbench.config import data_values, keys, monitors, phases, values


def validate_config(
    cfg: DictConfig, run_dir: Path | str | None = None, machine: bool = False
) -> None:
    """Raise the first TlbenchError found in `cfg`; return None when it is sound. `run_dir`: where
    the run writes (default: `paths.output_dir` when it resolves). `machine=True` also checks
    that this machine has what the config asks for (a GPU for trainer=gpu): the command line's
    preflight does, while a config that is sound elsewhere still validates here."""
    keys.check_keys(cfg)
    # Values before types: a bad top-level value is named as such, not where it is used.
    values.check_top_level(cfg)
    values.check_optimizer(cfg)
    values.check_trainer(cfg, machine=machine)
    values.check_scheduler(cfg)
    monitors.check_monitors(cfg)
    keys.check_strategy_types(cfg)
    values.check_strategy(cfg)  # after the types: the multipliers are numbers by now
    phases.check_schedule_fits(cfg)  # a switch at or past max_epochs: a silent half-run
    data = cfg.get("data")
    if data is not None:
        data_values.check_data(data, Path(run_dir) if run_dir else _output_dir(cfg))
    for group in keys.TARGET_GROUPS:
        node = cfg.get(group)
        if node:  # scheduler=none is an empty node: no scheduler
            keys.check_target_node(node, group, values.OWN_CHECKS)
    for group in keys.TARGET_MAPS:
        for name, node in (cfg.get(group) or {}).items():
            if node is not None:
                keys.check_target_node(node, f"{group}.{name}", values.OWN_CHECKS)


def _output_dir(cfg: DictConfig) -> Path | None:
    try:
        return Path(cfg.paths.output_dir)
    except Exception:  # outside a Hydra job ${hydra:runtime.output_dir} does not resolve
        return None
