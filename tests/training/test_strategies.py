"""Strategy semantics, proven by what actually changes after real optimizer steps."""

import lightning as L
import pytest
import torch

from tlbench.errors import TlbenchError
from tlbench.models import efficientnet_lite, torchvision_source
from tlbench.models.efficientnet_lite import remap
from tlbench.training import strategies
from tlbench.training.run import build_run


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.net.state_dict().items()}


def fit_steps(cfg, steps=3):
    datamodule, module = build_run(cfg)
    before = snapshot(module)
    trainer = L.Trainer(
        max_steps=steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        precision="32-true",
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=datamodule)
    return module, before, snapshot(module)


def changed(before, after):
    return {
        k for k in before if before[k].is_floating_point() and not torch.equal(before[k], after[k])
    }


def packaged_weights(module):
    """The packaged ImageNet weights in our key layout."""
    state = torch.load(efficientnet_lite.weights_file("efficientnet_lite0"), weights_only=True)
    return remap(state, [len(s) for s in module.net.blocks])


def is_bn_buffer(key):
    return key.endswith(("running_mean", "running_var"))


def test_transfer_trains_only_the_head_and_freezes_bn_statistics(cfg_factory):
    module, before, after = fit_steps(cfg_factory("strategy=transfer"))
    assert changed(before, after) == {"classifier.weight", "classifier.bias"}
    # starts from the pretrained weights (everything but the new head)
    pretrained = packaged_weights(module)
    assert all(
        torch.equal(before[k], pretrained[k]) for k in before if not k.startswith("classifier")
    )
    assert module.plan.head_only
    trainable, total = module.plan.counts(module.net)
    assert trainable == 1280 * 10 + 10 and total > 3_000_000


def test_finetune_trains_everything_from_pretrained(cfg_factory):
    module, before, after = fit_steps(cfg_factory("strategy=finetune"))
    moved = changed(before, after)
    params = {n for n, _ in module.net.named_parameters()}
    assert params <= moved  # every parameter moved
    assert not any(is_bn_buffer(k) for k in moved)  # bn_mode: frozen keeps the pretrained ones
    pretrained = packaged_weights(module)
    assert torch.equal(before["conv_stem.weight"], pretrained["conv_stem.weight"])
    groups = {g["name"]: g["lr"] for g in module.param_groups()}
    assert groups["backbone"] == pytest.approx(0.1 * groups["head"])


def test_scratch_starts_random_and_trains_everything(cfg_factory):
    module, before, after = fit_steps(cfg_factory("strategy=scratch"))
    pretrained = packaged_weights(module)
    assert not torch.equal(before["conv_stem.weight"], pretrained["conv_stem.weight"])
    assert {n for n, _ in module.net.named_parameters()} <= changed(before, after)
    assert module.weights_origin == "random"


def test_transfer_keeps_frozen_bn_in_eval_after_lightning_calls_train(cfg_factory):
    _, module = build_run(cfg_factory("strategy=transfer"))
    module.train()
    assert not module.net.bn1.training and not module.net.blocks.training
    assert module.net.classifier.training


def test_partial_trainable_set_freezes_the_rest_and_its_bn(cfg_factory, torch_home):
    w = torchvision_source.resolve_weights("resnet18", "DEFAULT")
    torch.save(
        torchvision_source.build("resnet18", None).state_dict(), torchvision_source.cache_file(w)
    )
    cfg = cfg_factory(
        "model=resnet18",
        "strategy=finetune",
        "strategy.trainable=[layer4,head]",
        "strategy.bn_mode=train",  # the trainable stage's BN statistics adapt, the frozen ones not
    )
    module, before, after = fit_steps(cfg)
    moved = changed(before, after)
    assert all(k.startswith(("layer4.", "fc.")) for k in moved)
    assert "layer4.1.bn2.running_mean" in moved and "layer3.1.bn2.running_mean" not in moved
    assert {g["name"] for g in module.param_groups()} == {"head", "backbone"}


def test_unknown_pattern_lists_nearest_names():
    net = torchvision_source.build("resnet18", None)
    with pytest.raises(TlbenchError, match=r"strategy.trainable='layer5'.*'layer4'"):
        strategies.select(net, ["fc"], ["layer5"])


def test_train_bn_opt_out_trains_bn_of_frozen_layers():
    net = torchvision_source.build("resnet18", None)
    plan = strategies.plan(net, ["fc"], {"trainable": ["head"], "train_bn": True})
    assert "layer1.0.bn1.weight" in plan.trainable and "layer1.0.conv1.weight" not in plan.trainable
    assert not plan.head_only and plan.eval_modules == []
