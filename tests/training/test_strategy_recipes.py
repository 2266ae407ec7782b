"""The fine-tuning recipe's mechanisms: pretrained BatchNorm statistics kept (bn_mode), per-group
LR warm-up from the epoch a group starts training, both consistent across a resume mid-schedule,
and the trainable-parameter count of every phase."""

import lightning as L
import pytest
import torch
from torch.nn.modules.batchnorm import _NormBase

from tests.helpers.training import fit_plain
from tlbench.training import lr_groups, strategies
from tlbench.training.run import build_run, train

LP_FT = ("strategy=lp_ft", "strategy.schedule=[{epoch: 1, trainable: [all]}]")


class Steps(L.Callback):
    """Each optimizer step's LR per group (as the optimizer applies it), and BN modes."""

    def __init__(self):
        self.lrs: list[tuple[int, dict[str, float]]] = []
        self.bn_training: list[bool] = []
        self.state_steps: dict[int, float] = {}  # epoch -> AdamW step count of conv_stem at start

    def on_before_optimizer_step(self, trainer, module, optimizer):
        lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
        self.lrs.append((trainer.current_epoch, lrs))
        self.bn_training += [m.training for m in module.net.modules() if isinstance(m, _NormBase)]

    def on_train_epoch_start(self, trainer, module):
        state = trainer.optimizers[0].state.get(module.net.conv_stem.weight, {})
        self.state_steps[trainer.current_epoch] = float(state.get("step", 0))


def fit(cfg, epochs, **kwargs):
    steps = Steps()
    module, trainer = fit_plain(cfg, steps, epochs, **kwargs)
    return module, steps, trainer


def norms(module):
    return [m for m in module.net.modules() if isinstance(m, _NormBase)]


@pytest.mark.parametrize(
    "overrides,frozen",
    [
        (("strategy=finetune",), True),  # the default: pretrained statistics kept
        (("strategy=finetune", "strategy.bn_mode=train"), False),
        (("strategy=finetune", "strategy.pretrained=false"), False),  # no statistics to keep
        (("strategy=scratch",), False),
    ],
)
def test_bn_mode_decides_whether_pretrained_statistics_stay(cfg_factory, overrides, frozen):
    _, module = build_run(cfg_factory(*overrides))
    module.train()
    assert all(p.requires_grad for p in module.net.parameters())  # BN affine trains either way
    assert {m.training for m in norms(module)} == {not frozen}
    assert module.net.conv_stem.training  # only the norm layers are pinned


def test_warmup_factor_is_a_linear_ramp_from_each_groups_start():
    f = lr_groups.warmup_factor
    assert [f(3, 3, b, 4, 1.0) for b in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(3, 4, 0, 4, 1.0) == 1.0  # one epoch later: done
    assert f(0, 1, 1, 4, 2.0) == pytest.approx(6 / 8)  # spans epochs
    assert f(3, 2, 0, 4, 1.0) == 1.0 and f(0, 0, 0, 4, 0) == 1.0  # not started yet / off


def test_finetune_keeps_statistics_and_warms_the_backbone_up(cfg_factory):
    cfg = cfg_factory("strategy=finetune", "strategy.warmup_epochs=1")  # 5 steps of 16 images
    _, module = build_run(cfg)
    before = {k: v.clone() for k, v in module.net.state_dict().items()}
    module, steps, _ = fit(cfg, epochs=1)
    after = module.net.state_dict()
    stats = [k for k in after if k.endswith(("running_mean", "running_var"))]
    assert stats and all(torch.equal(before[k], after[k]) for k in stats)
    assert not torch.equal(before["conv_stem.weight"], after["conv_stem.weight"])
    assert not any(steps.bn_training)
    head = [lrs["head"] for _, lrs in steps.lrs]
    ratio = [lrs["backbone"] / lrs["head"] for _, lrs in steps.lrs]
    assert head == [pytest.approx(1e-3)] * 5  # the head is not warmed up
    # linear, not compounding: each step scales the scheduler's LR, then puts it back
    assert ratio == pytest.approx([0.1 * k / 5 for k in range(1, 6)])


def test_resume_mid_schedule_keeps_bn_mode_warmup_and_optimizer_state(cfg_factory, tmp_path):
    """LP-FT switching at epoch 1 with a two-epoch warm-up, killed after epoch 2 and resumed:
    the third epoch trains with the same BN mode and LRs as an uninterrupted run, and AdamW
    continues from the saved moments of the backbone (not fresh ones)."""
    cfg = cfg_factory(*LP_FT, "strategy.warmup_epochs=2")
    _, whole, _ = fit(cfg, epochs=3)
    fit(cfg, epochs=3, ckpt_dir=tmp_path / "ck", stop_after=2)
    resumed, part, trainer = fit(cfg, epochs=3, ckpt_path=str(tmp_path / "ck" / "last.ckpt"))
    assert trainer.current_epoch == 3
    assert not any(part.bn_training)  # pretrained statistics still frozen after the resume
    assert [lrs for e, lrs in whole.lrs if e == 2] == [lrs for e, lrs in part.lrs]
    ramp = [lrs["backbone"] / lrs["head"] for e, lrs in whole.lrs if e >= 1]
    assert ramp == pytest.approx([0.01 * k / 10 for k in range(1, 11)])  # 2 epochs x 5 steps
    assert part.state_steps[2] == whole.state_steps[2] == 5  # phase-2 steps before epoch 2
    assert whole.state_steps[1] == 0  # the backbone had no state before the switch


def test_summary_records_the_trainable_count_of_every_phase(cfg_factory):
    s = train(cfg_factory(*LP_FT, "trainer.max_epochs=2", "test_after_fit=false"))
    head = 1280 * 10 + 10
    assert s.status == "ok"
    assert s.trainable_params_by_phase == [
        {"epoch": 0, "trainable": head},
        {"epoch": 1, "trainable": s.total_params},
    ]
    assert s.trainable_params == s.total_params  # what actually trained: the largest


def test_unscheduled_strategies_have_one_phase(cfg_factory):
    _, module = build_run(cfg_factory("strategy=transfer"))
    counts = strategies.phase_counts(module.net, module.head_names, module.hparams.strategy)
    assert counts == [{"epoch": 0, "trainable": 12810}]
