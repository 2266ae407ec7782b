"""Every classification model torchvision lists works as `model=<name>` (the way timm's own test
suite runs over its whole registry): random init, heads found and replaced for N classes, a
forward and backward pass at the smallest input size the registry accepts, and the precision
probe's measurement in train mode (what `trainer.precision=auto` runs before training on a bf16
CPU; googlenet's auxiliary outputs once broke it unnoticed because this test skipped it)."""

import pytest
import torch

from tests.helpers.models import (
    check_builds_and_trains,
    check_precision_probe,
    model_cfg,
    smallest_valid_size,
)
from tlbench.models import torchvision_source


@pytest.mark.slow
@pytest.mark.parametrize("name", torchvision_source.names())
def test_every_torchvision_model_builds_and_trains(name):
    torch.manual_seed(0)
    size = smallest_valid_size(model_cfg(f"model={name}"))
    built = check_builds_and_trains(name, size)
    check_precision_probe(built.net, size)
