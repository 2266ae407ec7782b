"""Whole-config validation: every problem a config can have, found before any data is read or any
model is built, each reported as one paragraph (key, value, what is allowed, the fix).

`validate_config(cfg)` runs the checks, cheapest first:
- tlbench.config.keys: unknown keys (read from the config files, the schemas of
  tlbench.config.schema and the constructors' signatures of `_target_` nodes), the allow-list of
  `_target_`s, and the types of values from those annotations;
- tlbench.config.values: top-level switches, seed, optimizer, scheduler and trainer values, and
  the strategy's learning-rate multipliers (finite, > 0; 0 only in lr_mult, where it freezes);
- tlbench.config.monitors: a callback's `monitor` names a metric tlbench logs;
- tlbench.config.phases: every switch of a freeze schedule (lp_ft, gradual) happens before
  trainer.max_epochs ends the run;
- tlbench.config.data_values: the data node (sizes, budgets, fractions, classes, folders) and a run
  dir inside the dataset.
The model name (with close-match suggestions), its weights and its input size are checked by
tlbench.models.registry.validate, and the strategy's patterns on the network by
tlbench.training.lr_groups.check_patterns; training's validate calls both right after this.
tlbench.config.preflight runs all of it (training's validate through its `then` hook) before
Hydra starts, so before any run dir exists.
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
