"""Building any registry model at its smallest accepted size and checking that it trains
(tests/models/test_models_all.py runs it over every torchvision model)."""

import torch
from torch import nn

from tlbench.config import compose
from tlbench.errors import TlbenchError
from tlbench.models import registry

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
    out = net(torch.randn(2, 3, size, size))
    outputs = list(out) if isinstance(out, tuple) else [out]
    outputs = [o for o in outputs if o is not None]
    for o in outputs:  # main logits and any auxiliary logits
        assert o.shape == (2, NUM_CLASSES)
    sum(o.sum() for o in outputs).backward()
    main_head = built.net.get_submodule(built.head_names[0])
    assert main_head.weight.grad is not None and main_head.weight.grad.abs().sum() > 0
    return built
