"""The ResNets of ``lightly.models.ResNetGenerator``, with lightly's key names, in the two forms files hold.

lightly's ResNet has a 3x3 stride-1 stem (padding 1) without max-pool, blocks whose projection is named
``shortcut`` (an empty ``Sequential`` when it is the identity), a classifier named ``linear`` and a fixed
4x4 average pool, so its own forward works on 32 px images. Files hold it in two forms:

- ``lightly_resnet``: the module itself (``conv1``, ``bn1``, ``layer1..4``; the ``linear`` classifier is
  dropped by the format). Features are its forward without the classifier: ReLU after the stem, pooled.
- ``lightly_resnet_trunk``: ``Sequential(*resnet.children()[:-1], AdaptiveAvgPool2d(1))`` as lightly's
  examples and benchmarks build backbones, with numeric keys ``0`` (conv1), ``1`` (bn1), ``2..5`` (stages).
  The ReLU after the stem is functional in lightly's module, so this trunk has none, and neither has ours.

We pool globally; at 32 px that is lightly's 4x4 pool, at other sizes it keeps the feature size fixed.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn as nn

from ..preprocessing import Preprocessing
from ..registry import Detection, register


class Block(nn.Module):
    """A basic (two 3x3) or bottleneck (1x1-3x3-1x1, stride on the 3x3) block with lightly's attribute names."""

    def __init__(self, cin: int, planes: int, stride: int, bottleneck: bool) -> None:
        super().__init__()
        self.bottleneck = bottleneck
        self.out_channels = planes * (4 if bottleneck else 1)
        first, middle = (1, 3) if bottleneck else (3, 3)
        self.conv1 = nn.Conv2d(cin, planes, first, stride=1 if bottleneck else stride, padding=first // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, middle, stride=stride if bottleneck else 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if bottleneck:
            self.conv3 = nn.Conv2d(planes, self.out_channels, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(self.out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != self.out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, self.out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(self.out_channels)
            )
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        if self.bottleneck:
            out = self.bn3(self.conv3(self.relu(self.bn2(self.conv2(out)))))
        else:
            out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


def _stages(base: int, layers: tuple[int, ...], bottleneck: bool) -> list[nn.Sequential]:
    stages, cin = [], base
    for index, count in enumerate(layers):
        planes = base * 2**index
        blocks = []
        for number in range(count):
            block = Block(cin, planes, 2 if index and not number else 1, bottleneck)
            cin = block.out_channels
            blocks.append(block)
        stages.append(nn.Sequential(*blocks))
    return stages


class LightlyResNet(nn.Module):
    """ResNetGenerator's module without its classifier: stem, ReLU, four stages, global average pool."""

    def __init__(self, base: int = 64, layers: tuple[int, ...] = (2, 2, 2, 2), bottleneck: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, base, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU()
        self.layer1, self.layer2, self.layer3, self.layer4 = _stages(base, layers, bottleneck)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.flatten(self.pool(x))


def lightly_trunk(base: int = 64, layers: tuple[int, ...] = (2, 2, 2, 2), bottleneck: bool = False) -> nn.Sequential:
    """``Sequential(conv1, bn1, layer1..4, AdaptiveAvgPool2d(1), Flatten)``: lightly's children trunk, pooled."""
    stem = [nn.Conv2d(3, base, 3, stride=1, padding=1, bias=False), nn.BatchNorm2d(base)]
    return nn.Sequential(*stem, *_stages(base, layers, bottleneck), nn.AdaptiveAvgPool2d(1), nn.Flatten(1))


def _kwargs(shapes: Mapping[str, tuple], conv: str, stages: tuple[str, ...]) -> dict | None:
    """base width, block counts and block type (those that differ from resnet-18's); None for other layouts."""
    stem = shapes.get(f"{conv}.weight")
    if stem is None or tuple(stem[1:]) != (3, 3, 3) or not any(".shortcut." in k for k in shapes):
        return None
    layers = tuple(len({k.split(".")[1] for k in shapes if k.startswith(f"{stage}.")}) for stage in stages)
    if 0 in layers:
        return None
    kwargs = {"base": stem[0], "layers": layers, "bottleneck": any(k.endswith(".conv3.weight") for k in shapes)}
    return {k: v for k, v in kwargs.items() if v != RESNET18[k]}


RESNET18 = {"base": 64, "layers": (2, 2, 2, 2), "bottleneck": False}
_LIGHTLY = Preprocessing(input_size=32)  # lightly's transforms normalise with ImageNet statistics by default


@register(
    "lightly_resnet",
    family="lightly_resnet",
    preprocessing=_LIGHTLY,
    detection=Detection("fallback", lambda shapes: _kwargs(shapes, "conv1", ("layer1", "layer2", "layer3", "layer4"))),
    description="lightly ResNetGenerator module (resnet-9..152, any width), classifier dropped; pooled",
)
def lightly_resnet(**kwargs) -> LightlyResNet:
    """lightly's ResNetGenerator ResNet without its ``linear`` classifier."""
    return LightlyResNet(**kwargs)


@register(
    "lightly_resnet_trunk",
    family="lightly_resnet",
    preprocessing=_LIGHTLY,
    detection=Detection("fallback", lambda shapes: _kwargs(shapes, "0", ("2", "3", "4", "5"))),
    description="lightly Sequential(*ResNetGenerator.children()[:-1], AdaptiveAvgPool2d(1)); no stem ReLU",
)
def lightly_resnet_trunk(**kwargs) -> nn.Sequential:
    """lightly's ``Sequential(*ResNetGenerator(...).children()[:-1], AdaptiveAvgPool2d(1))``, flattened."""
    return lightly_trunk(**kwargs)
