"""Every supported architecture: the AGF rule each conv gets, and explain running on it."""

from __future__ import annotations

import functools

import pytest
import timm
import torch
import torch.nn as nn
import torchvision

import backbones
from probe import explain
from probe.attribution import conv_rules
from tests.support.agf_models import quick_init, resnet_with_head

TORCHVISION_RESNETS = [
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "wide_resnet50_2",
    "resnext50_32x4d",
]
VGGS = [f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")]
TIMM = ["resnet18", "resnet50"]


def _builder(source: str, name: str):
    if source == "timm":
        return functools.partial(timm.create_model, name, pretrained=False)
    return getattr(torchvision.models, name)


def _on_meta(source: str, name: str) -> nn.Module:
    with torch.device("meta"):
        return _builder(source, name)()


def expected_resnet_rules(model: nn.Module, prefix: str = "") -> dict[str, str]:
    """The published assignment: z^B stem; Bottleneck: 3×3 conv2 full; BasicBlock (the fix that
    mirrors it): conv1 full; every other block conv (1×1, second 3×3, downsample) C-only."""
    rules = {f"{prefix}conv1": "zb"}
    for name, module in model.named_modules():
        if not hasattr(module, "conv2") or not name.startswith("layer"):
            continue
        bottleneck = hasattr(module, "conv3")
        full = "conv2" if bottleneck else "conv1"
        for conv in ("conv1", "conv2", "conv3") if bottleneck else ("conv1", "conv2"):
            rules[f"{prefix}{name}.{conv}"] = "full" if conv == full else "flat"
        if module.downsample is not None:
            rules[f"{prefix}{name}.downsample.0"] = "flat"
    return rules


@pytest.mark.parametrize(
    "source, name", [("torchvision", n) for n in TORCHVISION_RESNETS] + [("timm", n) for n in TIMM]
)
def test_resnet_rule_assignment(source, name):
    model = _on_meta(source, name)
    got = conv_rules(model)
    assert got == dict(sorted(expected_resnet_rules(model).items(), key=lambda kv: list(got).index(kv[0])))
    assert list(got.values()).count("full") == sum(len(getattr(model, f"layer{i}")) for i in range(1, 5))


@pytest.mark.parametrize("name", VGGS)
def test_vgg_rule_assignment(name):
    model = _on_meta("torchvision", name)
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert conv_rules(model) == {path: ("zb" if i == 0 else "full") for i, path in enumerate(convs)}


def test_backbone_with_head_rule_assignment():
    model = resnet_with_head()
    expected = expected_resnet_rules(model[0], prefix="0.")
    assert conv_rules(model) == {k: expected[k] for k in conv_rules(model)}
    assert len(conv_rules(model)) == len(expected)


def test_composite_override_changes_one_conv_and_the_map():
    model = resnet_with_head()
    images = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    rules = conv_rules(model, {"0.layer1.0.conv2": "full"})
    assert rules["0.layer1.0.conv2"] == "full" and rules["0.layer1.0.conv1"] == "full"
    assert not torch.equal(explain(model, images), explain(model, images, composite={"0.layer1.0.conv2": "full"}))


ALL = [("torchvision", n) for n in TORCHVISION_RESNETS + VGGS] + [("timm", n) for n in TIMM]


@pytest.mark.parametrize("source, name", ALL)
def test_every_listed_architecture_gives_finite_maps(source, name):
    model = quick_init(_builder(source, name))
    images = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    maps = explain(model, images, target=7)
    assert maps.shape == (1, 32, 32) and maps.dtype == torch.float32
    assert torch.isfinite(maps).all() and maps.abs().max() > 0


def test_backbone_with_pseudo_class_head_runs_every_method():
    model = nn.Sequential(backbones.create("resnet_small"), nn.Linear(128, 5)).eval()
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for method in ("agf", "gradcam", "lrp", "saliency"):
        maps = explain(model, images, method=method)
        assert maps.shape == (2, 32, 32) and torch.isfinite(maps).all()
