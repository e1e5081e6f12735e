"""Module-scoped seeded reference models (building a ViT takes a second; tests share them)."""

from __future__ import annotations

import pytest
import torch.nn as nn

from backbones.archs.small_resnet import SmallResNet
from tests.support.layouts import seeded, torchvision_resnet, vit_small


@pytest.fixture(scope="module")
def resnet18_ref() -> nn.Module:
    return torchvision_resnet("resnet18", seed=1)


@pytest.fixture(scope="module")
def small_ref() -> nn.Module:
    return seeded(SmallResNet, seed=2)


@pytest.fixture(scope="module")
def vit6_ref() -> nn.Module:
    return vit_small(6, seed=3)


@pytest.fixture(scope="module")
def vit12_ref() -> nn.Module:
    return vit_small(12, seed=4)
