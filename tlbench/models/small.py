"""Small-image backbones for 32 px data, trained from scratch (no ImageNet weights exist for them):
`mini_vgg` (the classic CIFAR-10 -> CIFAR-100 experiment's 9 conv + 3 fc layers) and `lenet5`.

Module names are chosen for strategy patterns: `features.conv<i>`, `features.pool<i>`,
`classifier.fc<i>`, the last fc being the head. Both are built with a 1000-way head like every
other source. Why: docs/architecture.md, "Models".
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from tlbench.preprocess import Preprocess

# No pretrained source to match: inputs scaled to [-1, 1]; 32 px images are used as they are
# (resize_size == crop_size, so no border is cropped away).
PREPROCESS = Preprocess(
    crop_size=32,
    resize_size=32,
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    interpolation="bilinear",
)

IMAGENET_CLASSES = 1000  # the placeholder head size every builder starts with

# Stage widths of mini_vgg: half of VGG's first three stages (64/128/256).
# Why: docs/architecture.md, "Models".
MINI_VGG_WIDTHS = (32, 64, 128)
MINI_VGG_HIDDEN = 512  # width of fc1 and fc2


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(
                cin, cout, 3, padding=1, bias=False
            ),  # BN's shift makes a bias redundant
            bn=nn.BatchNorm2d(cout),
            relu=nn.ReLU(inplace=True),
        )
    )


class MiniVGG(nn.Module):
    """9 conv (3x3, BN, ReLU) in 3 stages with a 2x2 max-pool after each, then 3 affine layers."""

    def __init__(self, num_classes: int = IMAGENET_CLASSES, dropout: float = 0.5) -> None:
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        cin, n = 3, 0
        for stage, width in enumerate(MINI_VGG_WIDTHS, start=1):
            for _ in range(3):
                n += 1
                layers[f"conv{n}"] = _conv_bn_relu(cin, width)
                cin = width
            layers[f"pool{stage}"] = nn.MaxPool2d(2)
        self.features = nn.Sequential(layers)
        # 32 px -> 4x4 after three pools; the adaptive pool lets other sizes (>= 8 px) work too.
        self.avgpool = nn.AdaptiveAvgPool2d((4, 4))
        self.classifier = nn.Sequential(
            OrderedDict(
                fc1=nn.Linear(cin * 4 * 4, MINI_VGG_HIDDEN),
                relu1=nn.ReLU(inplace=True),
                drop1=nn.Dropout(dropout),
                fc2=nn.Linear(MINI_VGG_HIDDEN, MINI_VGG_HIDDEN),
                relu2=nn.ReLU(inplace=True),
                drop2=nn.Dropout(dropout),
                fc3=nn.Linear(MINI_VGG_HIDDEN, num_classes),
            )
        )

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


class LeNet5(nn.Module):
    """C1 conv5 -> S2 pool -> C3 conv5 -> S4 pool -> C5 conv5 (a 120-unit layer) -> F6 84 -> out."""

    def __init__(self, num_classes: int = IMAGENET_CLASSES) -> None:
        super().__init__()
        self.features = nn.Sequential(
            OrderedDict(
                conv1=nn.Conv2d(3, 6, 5),
                relu1=nn.ReLU(inplace=True),
                pool1=nn.MaxPool2d(2),
                conv2=nn.Conv2d(6, 16, 5),
                relu2=nn.ReLU(inplace=True),
                pool2=nn.MaxPool2d(2),
                # 32 px gives exactly 5x5 here; the adaptive pool lets 16..N px inputs work too.
                resize=nn.AdaptiveAvgPool2d((5, 5)),
                conv3=nn.Conv2d(16, 120, 5),
                relu3=nn.ReLU(inplace=True),
            )
        )
        self.classifier = nn.Sequential(
            OrderedDict(
                fc1=nn.Linear(120, 84),
                relu=nn.ReLU(inplace=True),
                fc2=nn.Linear(84, num_classes),
            )
        )

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def mini_vgg(pretrained: bool = False) -> nn.Module:
    return MiniVGG()


def lenet5(pretrained: bool = False) -> nn.Module:
    return LeNet5()


# Smallest input sides that survive the pooling: three 2x2 pools need 8 px; LeNet's two 5x5
# convs and two pools need ((s - 4) // 2 - 4) // 2 >= 1, i.e. 16 px.
MIN_INPUT_SIZE = {"mini_vgg": 8, "lenet5": 16}
HEADS = {"mini_vgg": ["classifier.fc3"], "lenet5": ["classifier.fc2"]}
