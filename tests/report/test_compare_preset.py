"""`experiment=compare`: the three poles x an LR grid x 3 seeds on whatever data/model is given
(composed and counted, never run in full)."""

from __future__ import annotations

import math

import pytest

from tlbench.config import compose


def grid(cfg) -> dict[str, list[str]]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = cfg.hydra.sweeper.params
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    return {o.key_or_group: list(o.sweep_string_iterator()) for o in parsed}


@pytest.mark.parametrize(
    ("extra", "data", "model"),
    [([], "digits", "efficientnet_lite0"), (["data=digits", "model=lenet5"], "digits", "lenet5")],
)
def test_compare_preset_sweeps_strategies_lrs_and_seeds(tmp_path, extra, data, model):
    cfg = compose(
        ["experiment=compare", *extra, f"paths.output_dir={tmp_path}"], return_hydra_config=True
    )
    assert cfg.data.name == data and cfg.model.name == model  # the user's choice, untouched
    g = grid(cfg)
    assert g["strategy"] == ["transfer", "finetune", "scratch"]
    assert [float(x) for x in g["optimizer.lr"]] == [3e-4, 1e-3, 3e-3]
    assert g["seed"] == ["0", "1", "2"]
    assert math.prod(len(v) for v in g.values()) == 27
    assert cfg.data.subset_seed == cfg.seed  # each seed its own labelled subset
