"""Every classification model torchvision lists works as `model=<name>` (the way timm's own test
suite runs over its whole registry): random init, heads found and replaced for N classes, a
forward and backward pass at the smallest input size the registry accepts."""

import pytest
import torch

from tests.helpers.models import check_builds_and_trains
from tlbench.models import torchvision_source


@pytest.mark.slow
@pytest.mark.parametrize("name", torchvision_source.names())
def test_every_torchvision_model_builds_and_trains(name):
    torch.manual_seed(0)
    check_builds_and_trains(name)
