"""The ResNet of SimCLR v2 checkpoints converted by Separius/SimCLRv2-Pytorch, with its key names.

Layout (``net.0`` stem, ``net.{1..4}.blocks.{i}`` with ``projection`` and ``net.{j}``) follows the
converter so that its files load strictly. sk0 models use only Conv2d/BatchNorm2d/ReLU/MaxPool2d
and residual adds; sk1 models add selective-kernel convolutions (softmax over two branches) and a
ResNet-D average-pool shortcut, which the AGF engine does not cover.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..preprocessing import RAW, Preprocessing
from ..registry import Detection, register
from .resnets import block_counts

SK_RATIO = 0.0625  # selective-kernel squeeze ratio of the sk1 models
SK_MIN_DIM = 32
DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def _conv(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=(kernel - 1) // 2, bias=False)


def _bn(channels: int, relu: bool = True) -> nn.Sequential:
    """BatchNorm (eps 1e-5) followed by ReLU or nothing; a Sequential so keys read ``.0.weight``."""
    return nn.Sequential(nn.BatchNorm2d(channels, eps=1e-5), nn.ReLU() if relu else nn.Identity())


class SelectiveKernel(nn.Module):
    """Two 3x3 branches computed as one conv, mixed per channel by a softmax over branch attention."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        mid = max(int(cout * SK_RATIO), SK_MIN_DIM)
        self.main_conv = nn.Sequential(_conv(cin, 2 * cout, stride=stride), _bn(2 * cout))
        self.mixing_conv = nn.Sequential(_conv(cout, mid, 1), _bn(mid), _conv(mid, 2 * cout, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = torch.stack(torch.chunk(self.main_conv(x), 2, dim=1))  # [2, N, C, H, W]
        summary = branches.sum(dim=0).mean(dim=(2, 3), keepdim=True)
        weights = torch.stack(torch.chunk(self.mixing_conv(summary), 2, dim=1)).softmax(dim=0)
        return (branches * weights).sum(dim=0)


class Projection(nn.Module):
    """Shortcut of a stage's first block: 1x1 conv (sk1: after a padded 2x2 average pool) and BN."""

    def __init__(self, cin: int, cout: int, stride: int, selective: bool) -> None:
        super().__init__()
        if selective:
            self.shortcut: nn.Module = nn.Sequential(
                nn.ZeroPad2d((0, 1, 0, 1)), nn.AvgPool2d(2, stride=stride), _conv(cin, cout, 1)
            )
        else:
            self.shortcut = _conv(cin, cout, 1, stride=stride)
        self.bn = _bn(cout, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (or selective kernel) -> 1x1 with 4x expansion; ReLU after the residual add."""

    def __init__(self, cin: int, planes: int, stride: int, selective: bool, project: bool) -> None:
        super().__init__()
        self.projection: nn.Module = Projection(cin, planes * 4, stride, selective) if project else nn.Identity()
        middle: list[nn.Module] = (
            [SelectiveKernel(planes, planes, stride)]
            if selective
            else [_conv(planes, planes, stride=stride), _bn(planes)]
        )
        self.net = nn.Sequential(
            _conv(cin, planes, 1), _bn(planes), *middle, _conv(planes, planes * 4, 1), _bn(planes * 4, relu=False)
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.projection(x) + self.net(x))


class Stage(nn.Module):
    def __init__(self, count: int, cin: int, planes: int, stride: int, selective: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([Bottleneck(cin, planes, stride, selective, project=True)])
        self.blocks.extend(Bottleneck(planes * 4, planes, 1, selective, project=False) for _ in range(count - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


def _stem(width: int, selective: bool) -> nn.Sequential:
    half = 64 * width // 2
    if selective:  # three 3x3 convolutions
        convs: list[nn.Module] = [
            _conv(3, half, stride=2),
            _bn(half),
            _conv(half, half),
            _bn(half),
            _conv(half, 2 * half),
        ]
    else:
        convs = [_conv(3, 2 * half, 7, stride=2)]
    return nn.Sequential(*convs, _bn(2 * half), nn.MaxPool2d(3, stride=2, padding=1))


class SimCLRv2ResNet(nn.Module):
    """Feature extractor: ``net`` (stem + 4 stages) then global average pooling -> [N, 2048 * width]."""

    def __init__(self, depth: int = 50, width: int = 1, sk: int = 0) -> None:
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"SimCLR v2 ResNet depth must be one of {sorted(DEPTHS)}, got {depth}")
        selective = bool(sk)
        stages: list[nn.Module] = [_stem(width, selective)]
        cin = 64 * width
        for index, count in enumerate(DEPTHS[depth]):
            planes = 64 * width * 2**index
            stages.append(Stage(count, cin, planes, 1 if index == 0 else 2, selective))
            cin = planes * 4
        self.net = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.feature_dim = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.flatten(self.pool(self.net(x)))


def _fits(depth: int, width: int, sk: int):
    """``infer_kwargs`` hook: {} when the converter keys show this depth, width and sk, else None (cheap)."""

    def infer(shapes) -> dict | None:
        stem = shapes.get("net.0.0.weight")
        if stem is None:
            return None
        found_sk = int("net.0.2.weight" in shapes)
        found_width = stem[0] * (2 if found_sk else 1) // 64
        counts = block_counts(shapes, prefix="net.", depth=3)
        return {} if (counts, found_width, found_sk) == (DEPTHS[depth], width, sk) else None

    return infer


def _register_all() -> None:
    for depth in DEPTHS:
        for width in (1, 2, 3):
            for sk in (0, 1):

                def build(depth: int = depth, width: int = width, sk: int = sk) -> SimCLRv2ResNet:
                    return SimCLRv2ResNet(depth, width, sk)

                kind = "selective kernels, ResNet-D shortcut" if sk else "plain bottlenecks"
                register(
                    f"simclr_v2_r{depth}_{width}x_sk{sk}",
                    preprocessing=Preprocessing(normalization=RAW),
                    family="simclr_v2",
                    detection=Detection(infer_kwargs=_fits(depth, width, sk)),
                    description=(
                        f"SimCLR v2 ResNet-{depth} {width}x, sk{sk} ({kind}), {2048 * width}-d; converter key names"
                    ),
                )(build)


_register_all()
