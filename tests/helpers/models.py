"""Building any registry model at its smallest accepted size and checking that it trains
and taking the precision probe's measurement (tests/models/test_models_all.py runs both over every
torchvision model)."""

import torch
from torch import nn

from tlbench.config import compose
from tlbench.errors import TlbenchError
from tlbench.models import outputs, registry
from tlbench.training import precision_probe
from tlbench.training.device import choose_channels_last

# Sizes tried from small to large; the first one the registry accepts is used (inception_v3: 75,
# swin: 224, swin_v2: 256, vit_h_14 with patch 14: 112, ...), which keeps big models cheap here.
CANDIDATE_SIZES = (32, 64, 75, 96, 112, 128, 160, 224, 256, 299)
NUM_CLASSES = 5


def model_cfg(*overrides):
    return compose([*overrides, "paths.output_dir=/tmp/x"]).model


def smallest_valid_size(cfg, pretrained: bool = False) -> int:
    for size in CANDIDATE_SIZES:
        try:
            registry.describe(cfg, pretrained, image_size=size)
        except TlbenchError:
            continue
        return size
    raise AssertionError(f"no candidate size accepted for {cfg.name}")


def out_size(layer: nn.Module) -> int | None:
    if isinstance(layer, nn.Linear):
        return layer.out_features
    if isinstance(layer, nn.Conv2d):
        return layer.out_channels
    return None


def check_builds_and_trains(name: str, size: int | None = None) -> registry.BuiltModel:
    cfg = model_cfg(f"model={name}")
    size = size or smallest_valid_size(cfg)
    built = registry.build(cfg, num_classes=NUM_CLASSES, pretrained=False, image_size=size)
    assert built.weights == "random"
    for head in built.head_names:
        assert out_size(built.net.get_submodule(head)) == NUM_CLASSES, head
    # No ImageNet-sized classifier is left anywhere (a missed auxiliary head would show up here).
    leftovers = [n for n, m in built.net.named_modules() if out_size(m) == 1000]
    assert not leftovers, leftovers

    net = built.net.train()
    main, aux = outputs.split(net(torch.randn(2, 3, size, size)))
    assert len(aux) == len(built.head_names) - 1  # every auxiliary head is active in train mode
    for o in [main, *aux]:  # main logits and any auxiliary logits
        assert o.shape == (2, NUM_CLASSES)
    sum(o.sum() for o in [main, *aux]).backward()
    main_head = built.net.get_submodule(built.head_names[0])
    assert main_head.weight.grad is not None and main_head.weight.grad.abs().sum() > 0
    return built


def check_precision_probe(net: nn.Module, size: int) -> dict[str, float]:
    """The precision probe's measurement (tlbench.training.precision_probe) of `net` in train mode,
    as `trainer.precision=auto` takes it before a run on a bf16 CPU: one timed training step in
    each precision. Leaves `net` untouched."""
    net.train()
    channels_last = choose_channels_last("auto", net)
    rates = precision_probe.measure(net, (2, 3, size, size), channels_last, steps=(0, 1))
    assert set(rates) == set(precision_probe.CANDIDATES) and min(rates.values()) > 0, rates
    return rates
