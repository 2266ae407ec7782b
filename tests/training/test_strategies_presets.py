"""Every strategy preset's semantics, proven by what changes after real training epochs."""

import lightning as L
import pytest
import torch

from tests.helpers.training import fit_plain
from tlbench.config import CONF_DIR
from tlbench.errors import TlbenchError
from tlbench.models.stages import stages
from tlbench.training.run import build_run


class Snapshots(L.Callback):
    """State of the network at the start and after every training epoch."""

    def __init__(self):
        self.states = []

    @staticmethod
    def grab(module):
        return {k: v.detach().clone() for k, v in module.net.state_dict().items()}

    def on_train_start(self, trainer, module):
        self.states.append(self.grab(module))

    def on_train_epoch_end(self, trainer, module):
        self.states.append(self.grab(module))


def fit(cfg, epochs=1, **kwargs):
    snaps = Snapshots()
    module, trainer = fit_plain(cfg, snaps, epochs, **kwargs)
    return module, snaps.states, trainer


def changed(a, b):
    return {k for k in a if a[k].is_floating_point() and not torch.equal(a[k], b[k])}


def bn_stats(keys):
    return {k for k in keys if k.endswith(("running_mean", "running_var"))}


def test_every_preset_exists():
    assert {p.stem for p in (CONF_DIR / "strategy").glob("*.yaml")} >= {
        "transfer",
        "finetune",
        "scratch",
        "partial",
        "lp_ft",
        "gradual",
        "l2sp",
    }


@pytest.mark.parametrize("model,k", [("resnet18", 1), ("vgg16_bn", 2)])
def test_frozen_bn_is_bit_identical_after_an_epoch(cfg_factory, model, k):
    # Random init is enough to test freezing; partial = the last k stages + head train.
    cfg = cfg_factory(
        f"model={model}",
        "strategy=partial",
        "strategy.pretrained=false",
        f"strategy.last_n_stages={k}",
    )
    module, (start, end), _ = fit(cfg)
    trainable = set(module.plan.trainable)
    assert trainable == {p for st in stages(module.net, module.head_names)[-k:] for p in st} | {
        n
        for n, _ in module.net.named_parameters()
        if n.startswith(tuple(h + "." for h in module.head_names))
    }
    moved = changed(start, end)
    assert {n for n, _ in module.net.named_parameters()} & moved <= trainable
    bns = [n for n, m in module.net.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    frozen = [n for n in bns if f"{n}.weight" not in trainable]
    live = [n for n in bns if f"{n}.weight" in trainable]
    assert frozen and live
    for n in frozen:  # statistics and affine parameters untouched, bit for bit
        for suffix in ("running_mean", "running_var", "weight", "bias"):
            assert torch.equal(start[f"{n}.{suffix}"], end[f"{n}.{suffix}"]), f"{n}.{suffix}"
    assert all(f"{n}.running_mean" in moved for n in live)  # the trainable stages' BN adapts


def test_lp_ft_trains_the_head_first_then_everything(cfg_factory):
    cfg = cfg_factory("strategy=lp_ft", "strategy.schedule=[{epoch: 1, trainable: [all]}]")
    module, (s0, s1, s2), _ = fit(cfg, epochs=2)
    assert changed(s0, s1) == {"classifier.weight", "classifier.bias"}
    assert {n for n, _ in module.net.named_parameters()} <= changed(s1, s2)
    assert not bn_stats(changed(s1, s2))  # bn_mode: frozen keeps the pretrained statistics
    lrs = {g["name"]: g["lr"] for g in module.param_groups()}
    assert lrs["backbone"] == pytest.approx(0.01 * lrs["head"])


def test_gradual_unfreezes_stage_by_stage(cfg_factory):
    cfg = cfg_factory(
        "strategy=gradual",
        "strategy.schedule=[{epoch: 1, last_n_stages: 1}, {epoch: 2, last_n_stages: 3}]",
    )
    module, (s0, s1, s2, s3), _ = fit(cfg, epochs=3)
    st = stages(module.net, module.head_names)
    params = {n for n, _ in module.net.named_parameters()}

    def moved(a, b):
        return changed(a, b) & params

    head = {"classifier.weight", "classifier.bias"}
    assert moved(s0, s1) == head
    assert moved(s1, s2) - head <= set(st[-1]) and moved(s1, s2) & set(st[-1])
    assert moved(s2, s3) & set(st[-3]) and not moved(s2, s3) & set(st[0])
    # layer-wise decay: earlier stages get smaller LRs, named by stage
    lrs = {g["name"]: g["lr"] for g in module.param_groups()}
    n = len(st)
    assert lrs[f"stage{n - 1}"] == pytest.approx(lrs["head"])
    assert lrs[f"stage{n - 3}"] == pytest.approx(lrs["head"] * 0.7**2)


def test_lr_mult_zero_freezes_and_other_multipliers_form_named_groups(cfg_factory):
    cfg = cfg_factory(
        "model=resnet18",
        "strategy=finetune",
        "strategy.pretrained=false",
        "strategy.lr_mult={conv1: 0, layer1: 0, layer4: 0.5}",
    )
    module, (start, end), _ = fit(cfg)
    moved = changed(start, end)
    assert not any(
        k.startswith(("conv1.", "layer1.")) and not k.endswith(("running_mean", "running_var"))
        for k in moved
    )
    assert any(k.startswith("layer2.") for k in moved)
    lrs = {g["name"]: g["lr"] for g in module.param_groups()}
    assert lrs["lr_mult:layer4"] == pytest.approx(0.5e-3) and "lr_mult:conv1" not in lrs


def test_l2sp_penalises_distance_to_the_pretrained_weights(cfg_factory):
    module, (start, end), _ = fit(
        cfg_factory("strategy=l2sp", "strategy.l2sp={alpha: 0.01, beta: 0.0}")
    )
    assert all(g["weight_decay"] == 0.0 for g in module.param_groups())
    assert torch.equal(module._l2sp.reference["conv_stem.weight"], start["conv_stem.weight"])
    assert module.l2sp_penalty() > 0 and changed(start, end)


def test_l2sp_with_scratch_is_a_clear_error(cfg_factory):
    with pytest.raises(TlbenchError, match="strategy.l2sp"):
        build_run(cfg_factory("strategy=scratch", "+strategy.l2sp={alpha: 0.1}"))


def test_unknown_strategy_key_is_an_error(cfg_factory):
    with pytest.raises(TlbenchError, match=r"unknown .*key.*Allowed: .*trainable") as info:
        build_run(cfg_factory("+strategy.trainables=[head]"))
    assert "trainables" in str(info.value)


def test_resume_in_the_middle_of_a_schedule_keeps_the_plan_and_groups(cfg_factory, tmp_path):
    cfg = cfg_factory("strategy=lp_ft", "strategy.schedule=[{epoch: 1, trainable: [all]}]")
    first, _, t1 = fit(cfg, epochs=2, ckpt_dir=tmp_path / "ck", stop_after=1)
    groups_before = [g["name"] for g in t1.optimizers[0].param_groups]
    resumed, (r0, r1), t2 = fit(cfg, epochs=2, ckpt_path=str(tmp_path / "ck" / "last.ckpt"))
    assert t2.current_epoch == 2
    assert [g["name"] for g in t2.optimizers[0].param_groups] == groups_before
    assert len(resumed.plan.trainable) == len(list(resumed.net.parameters()))  # phase 2: everything
    assert "conv_stem.weight" in changed(r0, r1)
