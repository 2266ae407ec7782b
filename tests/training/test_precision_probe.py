"""`trainer.precision=auto` on a CPU with native bf16 measures bf16 against fp32 for the run's
network and batch shape, leaves the run's network untouched and caches the result per machine."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from tests.helpers.models import model_cfg
from tlbench.models import outputs, registry
from tlbench.training import precision_probe
from tlbench.training.device import cpu_has_native_bf16
from tlbench.training.run import train

SHAPE = (4, 3, 16, 16)


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(8, 5),
    )  # fmt: skip


def test_the_probe_measures_a_copy_and_caches_its_choice(tmp_path, monkeypatch):
    monkeypatch.setenv("TLBENCH_PRECISION_CACHE", str(tmp_path))
    net = small_net().train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    state = torch.random.get_rng_state()
    draw = torch.rand(1).item()
    torch.random.set_rng_state(state)
    precision, why, found = precision_probe.choose(net, SHAPE, channels_last=True)
    assert precision in precision_probe.CANDIDATES and not found["cached"]
    assert set(found["img_per_s"]) == set(precision_probe.CANDIDATES)
    assert min(found["img_per_s"].values()) > 0 and "img/s in bf16 autocast" in why
    assert torch.rand(1).item() == pytest.approx(draw)  # the global RNG as if no probe had run
    after = net.state_dict()  # weights and BatchNorm running statistics: not touched
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in net.parameters())
    again = precision_probe.choose(net, SHAPE, channels_last=True)
    assert again[0] == precision and again[2]["cached"] and "(cached)" in again[1]
    assert len(list(tmp_path.glob("*.json"))) == 1
    precision_probe.choose(net, (8, 3, 16, 16), channels_last=True)  # another batch shape
    assert len(list(tmp_path.glob("*.json"))) == 2
    for p in net[:3].parameters():  # a frozen backbone, as transfer and lp_ft's first phase
        p.requires_grad_(False)
    precision_probe.choose(net, SHAPE, channels_last=True)
    assert len(list(tmp_path.glob("*.json"))) == 3  # another trainable set: measured apart
    precision_probe.choose(net, SHAPE, channels_last=True, train_all=True)  # lp_ft's later phase
    assert len(list(tmp_path.glob("*.json"))) == 3  # = the fully trainable net's measurement
    assert not any(p.requires_grad for p in net[:3].parameters())  # the run's net: untouched


@pytest.mark.parametrize(
    "bf16, fp32, chosen",
    [(105.0, 100.0, "32-true"), (120.0, 100.0, "bf16-mixed"), (100.0, 250.0, "32-true")],
)
def test_bf16_must_win_by_a_margin(tmp_path, monkeypatch, bf16, fp32, chosen):
    monkeypatch.setenv("TLBENCH_PRECISION_CACHE", str(tmp_path))
    net = small_net()
    path = tmp_path / f"{precision_probe._key(net, SHAPE, True)}.json"
    path.write_text(json.dumps({"bf16-mixed": bf16, "32-true": fp32}))  # a stored measurement
    assert precision_probe.choose(net, SHAPE, channels_last=True)[0] == chosen


def test_an_unreadable_cache_file_is_measured_again(tmp_path, monkeypatch):
    monkeypatch.setenv("TLBENCH_PRECISION_CACHE", str(tmp_path))
    net = small_net()
    path = tmp_path / f"{precision_probe._key(net, SHAPE, False)}.json"
    path.write_text("{not json")
    _, _, found = precision_probe.choose(net, SHAPE, channels_last=False)
    assert not found["cached"] and set(json.loads(path.read_text())) == {"32-true", "bf16-mixed"}


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="the probe runs where bf16 is native")
def test_auto_precision_on_this_cpu_trains_in_the_measured_precision(cfg_factory):
    summary = train(cfg_factory("test_after_fit=false"))
    probe = summary.precision_probe
    rates = probe["img_per_s"]
    faster = rates["bf16-mixed"] >= precision_probe.PREFER_BF16 * rates["32-true"]
    assert summary.precision == ("bf16-mixed" if faster else "32-true")


@pytest.mark.parametrize("name,size", [("googlenet", 32), ("inception_v3", 299)])
def test_the_probe_measures_networks_with_auxiliary_outputs_in_train_mode(name, size):
    """In train mode googlenet and inception_v3 (at 299 px, where its aux head is kept) return
    GoogLeNetOutputs / InceptionOutputs; the probe times the training loss over them."""
    torch.manual_seed(0)
    built = registry.build(model_cfg(f"model={name}"), 2, pretrained=False, image_size=size)
    net = built.net.train()
    assert len(built.head_names) > 1  # the auxiliary heads are there ...
    if name == "inception_v3":  # ... a frozen backbone (strategy=transfer) keeps this one cheap
        for p in net.parameters():
            p.requires_grad_(False)
        for head in built.head_names:
            net.get_submodule(head).requires_grad_(True)
    shape = (2, 3, size, size)
    with torch.no_grad():  # ... and active: the network returns auxiliary logits
        assert len(outputs.split(net(torch.randn(shape)))[1]) == len(built.head_names) - 1
    # One timed step per precision (choose() runs the full measurement in
    # tests/models/test_aux_heads_train.py, through train()).
    rates = precision_probe.measure(net, shape, channels_last=True, steps=(0, 1))
    assert set(rates) == set(precision_probe.CANDIDATES) and min(rates.values()) > 0
