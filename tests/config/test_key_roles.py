"""Every config key is declared once (tlbench/config/key_roles.py) with its meaning for the
report, for resume and for TensorBoard; a new key that nobody classified fails here."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from tlbench.config import compose
from tlbench.config.app import CONF_DIR
from tlbench.config.key_roles import (
    ROLES,
    column,
    is_neutral,
    is_replicate,
    is_resumable,
    role,
)
from tlbench.report.groups import IDENTITY, SETTINGS
from tlbench.runtime.resume import RESUMABLE
from tlbench.summary_file import FIELDS

GROUPS = ("callbacks", "data", "logger", "model", "optimizer", "paths", "scheduler", "strategy",
          "trainer")  # fmt: skip


def leaves(node, prefix: str = "") -> set[str]:
    if not OmegaConf.is_dict(node):
        return {prefix}
    out = set()
    for key in node:
        out |= leaves(node._get_node(key), f"{prefix}.{key}" if prefix else str(key))
    return out


def option_overrides() -> list[list[str]]:
    """The default config, then every option of every config group, one at a time."""
    runs = [[]]
    for group in GROUPS:
        runs += [[f"{group}={f.stem}"] for f in sorted((CONF_DIR / group).glob("*.yaml"))]
    return runs


def test_every_leaf_key_of_every_group_option_is_declared():
    undeclared = {}
    for overrides in option_overrides():
        for key in leaves(compose(overrides)):
            if role(key) is None:
                undeclared.setdefault(key, overrides)
    assert not undeclared, (
        "declare these keys in tlbench/config/key_roles.py (report role, resumable, column): "
        f"{undeclared}"
    )


def test_an_undeclared_key_is_not_silently_classified():
    """What the test above guards against: `data.mixup` has no role until someone gives it one."""
    assert role("data.mixup") is None and not is_neutral("data.mixup")
    assert not is_resumable("data.mixup") and column("data.mixup") == "data.mixup"


@pytest.mark.parametrize(
    "key",
    ["resume", "overwrite", "logger", "logger.tensorboard.version", "paths.output_dir",
     "hydra.sweep.dir", "hydra/launcher", "callbacks.images.every_n_epochs", "data.num_workers",
     "trainer.enable_progress_bar", "+skip_completed"],
)  # fmt: skip
def test_where_and_how_a_run_runs_is_neutral(key):
    assert is_neutral(key) and not is_replicate(key)


@pytest.mark.parametrize(
    "key",
    ["callbacks.model_checkpoint.monitor", "trainer.limit_val_batches", "trainer.precision",
     "channels_last", "trainer.accelerator", "optimizer.lr", "strategy.lr_mult.layer4",
     "model.weights", "data.samples_per_class"],
)  # fmt: skip
def test_keys_that_change_the_result_are_not_neutral(key):
    assert role(key) is not None and not is_neutral(key) and not is_replicate(key)


def test_seeds_are_replicates_and_columns_come_from_the_table():
    assert all(is_replicate(k) for k in ("seed", "data.subset_seed", "data.split_seed"))
    assert column("data.samples_per_class") == column("data.train_fraction") == "label_budget"
    assert column("optimizer.lr") == "lr" and column("strategy.bn_mode") == "strategy.bn_mode"


def test_the_derived_lists_are_what_the_report_and_resume_read():
    assert IDENTITY == ("data", "model", "strategy", "samples_per_class", "train_fraction")
    assert SETTINGS == {"image_size": "data.image_size", "batch_size": "data.batch_size",
                        "lr": "optimizer.lr", "max_epochs": "trainer.max_epochs"}  # fmt: skip
    assert "trainer.max_epochs" in RESUMABLE and "resume" not in RESUMABLE
    assert is_resumable("resume") and is_resumable("paths.cache_dir")
    assert not is_resumable("optimizer.lr") and not is_resumable("strategy.trainable")
    assert all(isinstance(k, str) and "/" not in k for k in ROLES)


def test_every_summary_field_a_role_names_is_one_the_run_summary_has():
    """The report reads a key's value from the run's summary by the role's `summary` name: a
    name RunSummary lacks would read as None for every run and merge all configurations."""
    named = {r.summary for r in ROLES.values() if r.summary}
    assert named and named <= FIELDS, named - FIELDS
