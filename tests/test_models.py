import numpy as np
import pytest
import torch
from matplotlib import cbook
from PIL import Image

from tlbench.config import compose
from tlbench.data.transforms import build as build_transform
from tlbench.errors import TlbenchError
from tlbench.models import build as registry
from tlbench.models import checkpoint_source, heads, torchvision_source


def model_cfg(*overrides):
    return compose([*overrides, "paths.output_dir=/tmp/x"]).model


def test_efficientnet_lite0_has_real_imagenet_weights():
    """Grace Hopper in academic gown: class 400 must be in the ImageNet top 5 (random weights fail)."""
    built = registry.build(model_cfg(), num_classes=1000, pretrained=True)
    net = built.net.eval()
    # The head was replaced for 1000 new classes; put the packaged classifier back to read ImageNet labels.
    state = torch.load(registry.efficientnet_lite0.weights_file(), weights_only=True)
    net.classifier.weight.data.copy_(state["_fc.weight"])
    net.classifier.bias.data.copy_(state["_fc.bias"])
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        image = torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1)
    x = build_transform(built.preprocess, "none", train=False)(image).unsqueeze(0)
    assert built.preprocess.mean == (0.5, 0.5, 0.5) and built.preprocess.std == (0.5, 0.5, 0.5)
    with torch.no_grad():
        top5 = net(x).topk(5).indices[0].tolist()
    assert 400 in top5, top5


@pytest.mark.parametrize(
    "name,expected_heads",
    [
        ("resnet18", ["fc"]),
        ("alexnet", ["classifier.6"]),
        ("squeezenet1_1", ["classifier.1"]),
        ("googlenet", ["fc", "aux1.fc2", "aux2.fc2"]),
        ("mobilenet_v3_small", ["classifier.3"]),
    ],
)
def test_heads_are_found_and_replaced(name, expected_heads):
    built = registry.build(model_cfg(f"model={name}"), num_classes=7, pretrained=False)
    assert built.head_names == expected_heads
    for h in built.head_names:
        layer = built.net.get_submodule(h)
        assert (
            layer.out_features if isinstance(layer, torch.nn.Linear) else layer.out_channels
        ) == 7
    net = built.net.train()
    out = net(torch.randn(2, 3, 96, 96))
    logits = out[0] if isinstance(out, tuple) else out
    assert logits.shape == (2, 7)
    logits.sum().backward()


def test_find_heads_without_a_head_is_a_clear_error():
    with pytest.raises(TlbenchError, match="could not find a classifier head"):
        heads.find_heads(torch.nn.Sequential(torch.nn.Linear(3, 4)), original_classes=1000)


def _place_random_weights(name: str) -> tuple[dict, str]:
    """Save random weights where torch.hub looks for `name`'s DEFAULT weights; return them."""
    w = torchvision_source.resolve_weights(name, "DEFAULT")
    state = torchvision_source.build(name, None).state_dict()
    torch.save(state, torchvision_source.cache_file(w))
    return state, w.name


def test_torchvision_weights_load_from_the_hub_cache(torch_home):
    saved, weights_name = _place_random_weights("resnet18")
    built = registry.build(model_cfg("model=resnet18"), num_classes=3, pretrained=True)
    assert built.weights == f"torchvision:{weights_name}"
    assert torch.equal(built.net.conv1.weight, saved["conv1.weight"])
    assert torch.equal(built.net.layer4[1].bn2.running_var, saved["layer4.1.bn2.running_var"])
    assert built.net.fc.out_features == 3
    # The weights' own preprocessing reaches the data pipeline.
    assert registry.describe(model_cfg("model=resnet18"), pretrained=True).crop_size == 224


def test_missing_torchvision_weights_fail_with_an_actionable_message(torch_home):
    with pytest.raises(TlbenchError) as info:
        registry.build(model_cfg("model=vgg16"), num_classes=3, pretrained=True)
    message = str(info.value)
    expected = torch_home / "hub" / "checkpoints" / "vgg16-397923af.pth"
    assert str(expected) in message
    assert "strategy=scratch" in message and "model=efficientnet_lite0" in message


def test_unknown_weights_name_lists_the_valid_ones():
    with pytest.raises(TlbenchError, match="IMAGENET1K_V1"):
        registry.validate(model_cfg("model=resnet18", "model.weights=IMAGENET1K_V9"))


def test_checkpoint_of_another_architecture_names_the_mismatched_keys(tmp_path):
    path = tmp_path / "alexnet.pth"
    torch.save(torchvision_source.build("alexnet", None).state_dict(), path)
    with pytest.raises(
        TlbenchError,
        match=r"does not fit the backbone ResNet: missing keys: bn1.*unexpected keys: classifier",
    ):
        registry.build(
            model_cfg("model=resnet18", f"model.weights={path}"), num_classes=3, pretrained=True
        )


def test_checkpoint_source_loads_backbone_and_rebuilds_head(tmp_path):
    source = torchvision_source.build("resnet18", None)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    built = registry.build(
        model_cfg("model=resnet18", f"model.weights={path}"), num_classes=5, pretrained=True
    )
    assert torch.equal(built.net.layer1[0].conv1.weight, source.layer1[0].conv1.weight)
    assert built.net.fc.out_features == 5 and built.weights.startswith("file:")


class Payload:
    """Stands for any object whose unpickling would import and run code."""


def test_unsafe_checkpoint_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save(
        {"state_dict": {}, "payload": Payload()}, path
    )  # a class: needs arbitrary unpickling
    with pytest.raises(TlbenchError, match="cannot be loaded safely"):
        checkpoint_source.read(path)
