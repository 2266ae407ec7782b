"""googlenet and inception_v3 at 299 px train with their auxiliary heads active: every strategy,
in both precisions `trainer.precision=auto` may choose on a CPU (tlbench.training.precision_probe),
through the real `train(cfg)` on 2 digit classes, batch 2, one step (fast_dev_run).

The default suite runs one combination per network: googlenet as issue 21 found it failing
(strategy=scratch, `trainer.precision=auto`: on a bf16 CPU the probe measures the network in
train mode first, which once failed on GoogLeNetOutputs), inception_v3 at 299 px with a frozen
backbone in bf16 (one step there costs seconds on a CPU even so). The full matrix is `slow`."""

import pytest

from tlbench.training.run import train

NETS = {"googlenet": 32, "inception_v3": 299}  # inception_v3's aux head needs ~299 px
STRATEGIES = ["transfer", "finetune", "partial", "lp_ft", "gradual", "l2sp", "scratch"]
PRECISIONS = ["32-true", "bf16-mixed"]


def run(cfg_factory, net: str, strategy: str, precision: str) -> dict:
    summary = train(
        cfg_factory(
            f"model={net}",
            "model.weights=null",  # random init: nothing to download
            f"strategy={strategy}",
            f"trainer.precision={precision}",
            "data.classes=['0','1']",
            "data.samples_per_class=2",
            f"data.image_size={NETS[net]}",
            "data.batch_size=2",
            "trainer.fast_dev_run=true",
            "test_after_fit=false",
        )
    )
    assert summary.status == "ok" and summary.model == net
    return summary


def test_googlenet_trains_from_scratch_in_the_precision_auto_picks(cfg_factory):
    summary = run(cfg_factory, "googlenet", "scratch", "auto")
    assert summary.precision in PRECISIONS
    if summary.precision_probe is not None:  # a CPU with native bf16: the probe chose it
        assert set(summary.precision_probe["img_per_s"]) == set(PRECISIONS)


def test_inception_v3_at_299_px_trains_its_heads_in_bf16(cfg_factory):
    summary = run(cfg_factory, "inception_v3", "transfer", "bf16-mixed")
    assert summary.precision == "bf16-mixed"
    assert summary.trainable_params < summary.total_params


@pytest.mark.slow
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("net", list(NETS))
def test_aux_head_networks_train_with_every_strategy_and_precision(
    cfg_factory, net, strategy, precision
):
    assert run(cfg_factory, net, strategy, precision).precision == precision
