"""One model of every torchvision classification family, in the default suite: heads found and
replaced, forward and backward through tlbench.models.outputs (auxiliary outputs included), and
the precision probe's measurement in train mode, at the smallest input each accepts. The slow
tests/models/test_models_all.py does the same for every model torchvision lists."""

import pytest
import torch

from tests.helpers.models import (
    check_builds_and_trains,
    check_precision_probe,
    model_cfg,
    smallest_valid_size,
)

FAMILIES = [
    "alexnet",
    "vgg11",
    "resnet18",
    "squeezenet1_1",
    "densenet121",
    "googlenet",  # auxiliary heads active at any size
    "inception_v3",  # 75 px: aux head dropped; at 299 in test_aux_heads_train.py
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mnasnet0_5",
    "shufflenet_v2_x0_5",
    "efficientnet_b0",
    "regnet_x_400mf",
    "convnext_tiny",
    "vit_b_32",
    "swin_t",
    "maxvit_t",
]


# 33 s for all 17 on the 2-core development CPU (maxvit_t at 224 px: 8 s); several times that
# while other jobs load the machine.
@pytest.mark.parametrize("name", FAMILIES)
def test_one_model_per_family_builds_trains_and_is_probed(name):
    torch.manual_seed(0)
    size = smallest_valid_size(model_cfg(f"model={name}"))
    built = check_builds_and_trains(name, size)
    check_precision_probe(built.net, size)
