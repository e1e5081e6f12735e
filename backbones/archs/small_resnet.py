"""A small ResNet family for small images (the built-in synthetic world, CIFAR-sized data).

Key names follow torchvision's ResNet (``conv1``, ``bn1``, ``layer1.0.conv1``, ...,
``downsample.0``), so every checkpoint loader treats it like a torchvision ResNet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn as nn
from torchvision.models.resnet import BasicBlock

from ..preprocessing import Preprocessing
from ..registry import Detection, register
from .resnets import block_counts

DEFAULT_WIDTHS = (16, 32, 64, 128)
DEFAULT_LAYERS = (1, 1, 1, 1)
DEFAULT_STEM = "cifar"
DEFAULTS: dict[str, object] = {"widths": DEFAULT_WIDTHS, "layers": DEFAULT_LAYERS, "stem": DEFAULT_STEM}


class SmallResNet(nn.Module):
    """ResNet with BasicBlocks, configurable widths and a CIFAR-style or ImageNet-style stem.

    ``forward`` returns globally average-pooled features ``[N, widths[-1]]``; ``fc`` is an
    ``Identity`` so that state dicts carry no classifier, like an SSL backbone.
    """

    # the stages, set by name in __init__
    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def __init__(
        self,
        widths: Sequence[int] = DEFAULT_WIDTHS,
        layers: Sequence[int] = DEFAULT_LAYERS,
        stem: str = DEFAULT_STEM,
    ) -> None:
        super().__init__()
        if len(widths) != 4 or len(layers) != 4:
            raise ValueError("SmallResNet needs 4 widths and 4 layer counts")
        if stem == "cifar":
            self.conv1 = nn.Conv2d(3, widths[0], kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool: nn.Module = nn.Identity()
        elif stem == "imagenet":
            self.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            raise ValueError(f"unknown stem {stem!r}; use 'cifar' or 'imagenet'")
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        in_ch = widths[0]
        for index, (width, count) in enumerate(zip(widths, layers), start=1):
            stride = 1 if index == 1 else 2
            blocks = []
            for block in range(count):
                downsample = None
                if block == 0 and (stride != 1 or in_ch != width):
                    downsample = nn.Sequential(
                        nn.Conv2d(in_ch, width, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(width)
                    )
                blocks.append(BasicBlock(in_ch, width, stride if block == 0 else 1, downsample))
                in_ch = width
            setattr(self, f"layer{index}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Identity()
        self.feature_dim = widths[-1]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def small_resnet_kwargs(shapes: Mapping[str, tuple]) -> dict | None:
    """widths/layers/stem (those that differ from the defaults) from checkpoint shapes; None if not this family."""
    conv1 = shapes.get("conv1.weight")
    if conv1 is None or len(conv1) != 4 or conv1[-1] not in (3, 7) or any(k.endswith(".conv3.weight") for k in shapes):
        return None
    found_firsts = [shapes.get(f"layer{index}.0.conv1.weight") for index in range(1, 5)]
    firsts = [first for first in found_firsts if first is not None]
    if len(firsts) < len(found_firsts):
        return None
    widths = tuple(first[0] for first in firsts)
    found = {"widths": widths, "layers": block_counts(shapes), "stem": "cifar" if conv1[-1] == 3 else "imagenet"}
    return {k: v for k, v in found.items() if DEFAULTS[k] != v}


# It takes any widths, so detection tries it only when no fixed ResNet fits.
@register(
    "resnet_small",
    preprocessing=Preprocessing(input_size=64),
    detection=Detection(mode="fallback", infer_kwargs=small_resnet_kwargs),
    description="small ResNet (BasicBlock, widths 16-128, CIFAR stem) for 64 px images",
)
def resnet_small(**kwargs) -> SmallResNet:
    """Small ResNet for 64 px images: widths 16/32/64/128, one BasicBlock per stage, CIFAR stem."""
    return SmallResNet(**kwargs)
