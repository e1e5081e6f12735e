"""ResNets with torchvision key names: torchvision's own, every-width-scaled ones, CIFAR stems.

Every constructor returns a feature extractor (``fc`` is an ``Identity``) built from Conv2d,
BatchNorm2d, ReLU, MaxPool2d, AdaptiveAvgPool2d and residual adds only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn as nn
import torchvision.models as tvm
from torchvision.models.resnet import BasicBlock, Bottleneck

from ..preprocessing import CIFAR, Preprocessing
from ..registry import Detection, register


class ScaledResNet(nn.Module):
    """A ResNet whose every width (stem included) is ``width`` times torchvision's.

    This is the "2x/4x" of SimCLR, SwAV's w2/w4/w5 and VICReg's x2, which torchvision's
    wide_resnet50_2 is not (it widens only the bottleneck interior). ``stem="cifar"`` is
    solo-learn's CIFAR stem: a 3x3 stride-1 convolution with padding 2 and no max-pool.
    """

    # the stages, set by name in __init__
    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def __init__(
        self, block: type[BasicBlock | Bottleneck], layers: list[int], width: int = 1, stem: str = "imagenet"
    ) -> None:
        super().__init__()
        base = 64 * width
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(3, base, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        elif stem == "cifar":
            self.conv1 = nn.Conv2d(3, base, kernel_size=3, stride=1, padding=2, bias=False)
            self.maxpool = nn.Identity()
        else:
            raise ValueError(f"unknown stem {stem!r}; use 'imagenet' or 'cifar'")
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)
        self.inplanes = base
        for index, count in enumerate(layers, start=1):
            planes = base * 2 ** (index - 1)
            setattr(self, f"layer{index}", self._stage(block, planes, count, stride=1 if index == 1 else 2))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Identity()
        self.feature_dim = self.inplanes
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _stage(self, block: type[BasicBlock | Bottleneck], planes: int, count: int, stride: int) -> nn.Sequential:
        out = planes * block.expansion
        downsample = None
        if stride != 1 or self.inplanes != out:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))
        blocks = [block(self.inplanes, planes, stride, downsample)]
        blocks += [block(out, planes) for _ in range(count - 1)]
        self.inplanes = out
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def block_counts(shapes: Mapping[str, tuple], prefix: str = "layer", depth: int = 1) -> tuple[int, ...]:
    """Blocks per stage from key names (``layer{i}.{block}.``, or another numbering at ``depth``)."""
    return tuple(len({k.split(".")[depth] for k in shapes if k.startswith(f"{prefix}{i}.")}) for i in range(1, 5))


def with_blocks(layers: tuple[int, ...]) -> Callable[[Mapping[str, tuple]], dict | None]:
    """An ``infer_kwargs`` hook that rules an architecture out cheaply when the block counts differ."""

    def infer(shapes: Mapping[str, tuple]) -> dict | None:
        return {} if block_counts(shapes) == layers else None

    return infer


def _torchvision(name: str, summary: str) -> Callable[..., nn.Module]:
    def build(**kwargs) -> nn.Module:
        model = getattr(tvm, name)(weights=None, **kwargs)
        model.fc = nn.Identity()
        return model

    build.__name__ = name
    build.__doc__ = f"torchvision {name} without its classifier ({summary})."
    return build


_R50, _R101 = (3, 4, 6, 3), (3, 4, 23, 3)
_TORCHVISION = {
    "resnet18": ((2, 2, 2, 2), "BasicBlock [2,2,2,2], 512-d"),
    "resnet34": (_R50, "BasicBlock [3,4,6,3], 512-d"),
    "resnet50": (_R50, "Bottleneck [3,4,6,3], 2048-d"),
    "resnet101": (_R101, "Bottleneck [3,4,23,3], 2048-d"),
    "resnet152": ((3, 8, 36, 3), "Bottleneck [3,8,36,3], 2048-d"),
    "wide_resnet50_2": (_R50, "bottleneck interior x2, 2048-d"),
    "wide_resnet101_2": (_R101, "bottleneck interior x2, 2048-d"),
    "resnext50_32x4d": (_R50, "32 groups x 4, 2048-d"),
    "resnext101_32x8d": (_R101, "32 groups x 8, 2048-d"),
}
for _name, (_layers, _summary) in _TORCHVISION.items():
    register(_name, detection=Detection(infer_kwargs=with_blocks(_layers)))(_torchvision(_name, _summary))


def _scaled(
    block: type[BasicBlock | Bottleneck], layers: list[int], width: int, stem: str, doc: str
) -> Callable[..., nn.Module]:
    def build() -> ScaledResNet:
        return ScaledResNet(block, layers, width=width, stem=stem)

    build.__doc__ = doc
    return build


_SCALED = {
    "resnet50w2": (_R50, 2, "every width x2 incl. stem, 4096-d (SimCLR 2x, SwAV w2, VICReg x2)"),
    "resnet50w4": (_R50, 4, "every width x4 incl. stem, 8192-d (SimCLR 4x, SwAV w4)"),
    "resnet50w5": (_R50, 5, "every width x5 incl. stem, 10240-d (SwAV w5)"),
    "resnet200w2": ((3, 24, 36, 3), 2, "every width x2 incl. stem, 4096-d (VICReg 200x2, BYOL 200x2)"),
}
for _name, (_layers, _width, _doc) in _SCALED.items():
    register(_name, detection=Detection(infer_kwargs=with_blocks(_layers)))(
        _scaled(Bottleneck, list(_layers), _width, "imagenet", f"ResNet-{sum(_layers) * 3 + 2}, {_doc}")
    )

_CIFAR_NOTE = (
    "a 3x3 stem is taken to be solo-learn's (padding 2); CIFAR ResNets from other code use padding 1: "
    "for BasicBlock models pass arch=resnet_small"
)
for _name, _block, _layers in (("resnet18_cifar", BasicBlock, (2, 2, 2, 2)), ("resnet50_cifar", Bottleneck, _R50)):
    register(
        _name,
        preprocessing=Preprocessing(input_size=32, normalization=CIFAR),
        detection=Detection(infer_kwargs=with_blocks(_layers), note=_CIFAR_NOTE),
    )(
        _scaled(
            _block,
            list(_layers),
            1,
            "cifar",
            f"ResNet-{_name[6:8]} with solo-learn's CIFAR stem (3x3 conv, padding 2, no max-pool).",
        )
    )
