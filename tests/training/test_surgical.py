"""Surgical fine-tuning: `strategy=surgical_<i>` trains the head and exactly stage i, and the
`experiment=surgical` preset sweeps one such arm per stage next to transfer and finetune."""

from __future__ import annotations

import pytest

from tests.training.test_weight_drift import TINY_MINI, fit
from tlbench.config import compose
from tlbench.errors import TlbenchError
from tlbench.models.stages import stages
from tlbench.training.callbacks.weight_drift import WeightDrift
from tlbench.training.run import build_run


def test_each_surgical_arm_moves_exactly_its_stage_and_the_head(cfg_factory):
    cfg = cfg_factory(*TINY_MINI, "strategy=surgical_0")
    _, module = build_run(cfg)
    n = len(stages(module.net, module.head_names))
    assert n >= 2  # mini_vgg: two conv stages
    for i in range(n):
        drift = WeightDrift()
        fit(cfg_factory(*TINY_MINI, f"strategy=surgical_{i}", "strategy.warmup_epochs=0"), drift)
        moved = [v > 0 for v in drift.findings["weight_drift"].values()]
        assert moved == [j == i for j in range(n)], drift.findings["weight_drift"]
        assert drift.findings["head_norm"] > 0
        assert "weight_drift_warnings" not in drift.findings  # the frozen stages stayed put


def test_a_stage_the_model_lacks_is_refused_with_the_count(cfg_factory):
    with pytest.raises(TlbenchError) as err:
        build_run(cfg_factory(*TINY_MINI, "strategy=surgical_99"))
    text = str(err.value)
    assert "strategy.trainable" in text and "stage:99" in text and "stages" in text
    assert "--stages" in text  # the fix names how to list them


def test_surgical_is_finetunes_recipe_with_one_stage():
    finetune = compose(["strategy=finetune"]).strategy
    surgical = compose(["strategy=surgical_2"]).strategy
    assert surgical.name == "surgical_2" and list(surgical.trainable) == ["head", "stage:2"]
    rest = {k: v for k, v in surgical.items() if k not in ("name", "trainable")}
    assert rest == {k: v for k, v in finetune.items() if k not in ("name", "trainable")}


def test_the_preset_sweeps_one_arm_per_stage_with_compares_grid():
    params = compose(["experiment=surgical"], return_hydra_config=True).hydra.sweeper.params
    compare = compose(["experiment=compare"], return_hydra_config=True).hydra.sweeper.params
    arms = params["strategy"].split(",")
    assert arms[:2] == ["transfer", "finetune"]
    assert arms[2:] == [f"surgical_{i}" for i in range(8)]  # EfficientNet-Lite0's 8 stages
    assert params["optimizer.lr"] == compare["optimizer.lr"] and params.seed == compare.seed


def test_models_cli_lists_the_stages_and_the_surgical_sweep():
    from tlbench.models.__main__ import stage_list

    out = stage_list("resnet18", [])
    assert out[0].startswith("resnet18: 5 stages")  # stem + layer1..4
    assert [line.split()[1] for line in out[1:-1]] == ["conv1+bn1", "layer1", "layer2", "layer3",
                                                       "layer4"]  # fmt: skip
    assert out[-1].endswith("strategy=transfer,finetune," + ",".join(
        f"surgical_{i}" for i in range(5)))  # fmt: skip
