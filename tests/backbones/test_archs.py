"""Architectures: detection from shapes, the builders' faithfulness, the AGF-traceable contract, random controls."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torchvision
from torch import fx
from torchvision.models.resnet import Bottleneck

import backbones
from backbones import ArchitectureError
from backbones.archmatch import choose_arch, shapes_of
from backbones.archs.resnets import ScaledResNet
from backbones.archs.small_resnet import SmallResNet
from tests.support.layouts import assert_same_features, save, state, torchvision_resnet

AUTO_ARCHS = [a.name for a in backbones.list_archs() if a.origin == "builtin" and a.detection.mode != "hint"]


def meta_shapes(name: str, **kwargs) -> dict[str, tuple]:
    with torch.device("meta"):
        return shapes_of(backbones.create(name, **kwargs).state_dict())


# Architectures whose weights have identical shapes but compute different things (head count, activation).
TWINS = [("vit_small_patch16", "vit_small_patch16_mocov3"), ("clip_vit", "clip_vit_quickgelu")]
TWIN_OF = {a: b for pair in TWINS for a, b in (pair, pair[::-1])}


@pytest.mark.parametrize("name", AUTO_ARCHS)
def test_every_architecture_is_recognised_from_its_shapes(name):
    shapes = meta_shapes(name)
    hinted = choose_arch(shapes, "test", hint=name)
    assert (hinted.spec.name, hinted.kwargs) == (name, {})
    if name in TWIN_OF:
        with pytest.raises(ArchitectureError, match=f"{name}.*{TWIN_OF[name]}|{TWIN_OF[name]}.*{name}"):
            choose_arch(shapes, "test")
    else:
        choice = choose_arch(shapes, "test")
        assert (choice.spec.name, choice.kwargs) == (name, {})


@pytest.mark.parametrize("pair", TWINS)
def test_shape_twins_need_a_hint_or_arch(pair):
    """A 12-head MoCo v3 ViT-S never loads silently as timm's 6-head ViT-S (nor QuickGELU CLIP as GELU)."""
    shapes = meta_shapes(pair[0])
    with pytest.raises(ArchitectureError) as info:
        choose_arch(shapes, "test")
    assert "attention heads or the activation" in str(info.value)
    for name in pair:
        assert choose_arch(shapes, "test", hint=name).spec.name == name
        assert choose_arch(shapes, "test", forced=name).spec.name == name


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("resnet_small", {"widths": (8, 16, 32, 64), "layers": (2, 1, 1, 1)}),
        ("resnet_small", {"stem": "imagenet"}),
        ("vit_base_patch16", {"img_size": 96}),
        ("vit_small_patch8", {"img_size": 64}),
    ],
)
def test_constructor_arguments_are_read_from_shapes(name, kwargs):
    choice = choose_arch(meta_shapes(name, **kwargs), "test")
    assert (choice.spec.name, choice.kwargs) == (name, kwargs)


def test_resnet_small_variant_loads_with_its_inferred_widths(tmp_path):
    torch.manual_seed(7)
    model = SmallResNet(widths=(8, 16, 32, 64), layers=(2, 1, 1, 1)).eval()
    backbone = backbones.load(save(state(model), tmp_path / "small.pth"))
    assert backbone.arch_kwargs == {"widths": (8, 16, 32, 64), "layers": (2, 1, 1, 1)} and backbone.feature_dim == 64
    assert_same_features(backbone, model, 64)
    assert backbone.input_size == 64


def test_scaled_resnet_at_width_one_is_torchvision_resnet50():
    reference = torchvision_resnet("resnet50", seed=8)
    scaled = ScaledResNet(Bottleneck, [3, 4, 6, 3], width=1).eval()
    scaled.load_state_dict(reference.state_dict(), strict=True)
    assert_same_features(scaled, reference, 32)


def test_widened_resnets_have_the_documented_sizes():
    for name, stem, dim in (("resnet50w2", 128, 4096), ("resnet50w4", 256, 8192), ("resnet50w5", 320, 10240)):
        shapes = meta_shapes(name)
        assert shapes["conv1.weight"] == (stem, 3, 7, 7)
        assert shapes["layer4.2.conv3.weight"][0] == dim


ALLOWED_MODULES = (
    nn.Conv2d,
    nn.BatchNorm2d,
    nn.ReLU,
    nn.MaxPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
    nn.Identity,
    nn.Linear,
    nn.Dropout,  # VGG's classifier; the AGF engine treats it as the identity (eval mode)
)


@pytest.mark.parametrize(
    "name",
    [
        "resnet_small",
        "resnet18",
        "resnet50w2",
        "resnext50_32x4d",
        "resnet18_cifar",
        "simclr_v2_r50_1x_sk0",
        "lightly_resnet",
        "lightly_resnet_trunk",
        "vgg16",
        "vgg11_bn",
    ],  # fmt: skip
)
def test_agf_architectures_trace_to_standard_modules(name):
    """`nn.Sequential(backbone, nn.Linear(D, k))` traces with torch.fx into standard modules and adds only."""
    with torch.device("meta"):
        model = backbones.create(name)
        probe_model = nn.Sequential(model, nn.Linear(8, 3))
    graph = fx.symbolic_trace(probe_model).graph
    modules = dict(probe_model.named_modules())
    for node in graph.nodes:
        if node.op == "call_module":
            assert isinstance(modules[node.target], ALLOWED_MODULES), (node.target, type(modules[node.target]))
        elif node.op in ("call_function", "call_method"):
            assert getattr(node.target, "__name__", node.target) in ("add", "iadd", "flatten"), node.target


def test_backbone_with_a_linear_head_runs(tmp_path):
    torch.manual_seed(9)
    backbone = backbones.load(save(state(SmallResNet()), tmp_path / "small.pth"))
    probe_model = nn.Sequential(backbone, nn.Linear(backbone.feature_dim, 5))
    traced = fx.symbolic_trace(probe_model)
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(traced(x), probe_model(x))


def test_random_like_is_a_seeded_control_of_the_same_architecture(tmp_path):
    torch.manual_seed(10)
    model = torchvision_resnet("resnet18", seed=10)
    loaded = backbones.load(save({"state_dict": state(model)}, tmp_path / "m.pth"), format="simclr_v1", arch="resnet18")
    control = backbones.random_like(loaded, seed=3)
    again = backbones.random_like(loaded, seed=3)
    other = backbones.random_like(loaded, seed=4)
    assert (control.arch, control.feature_dim, control.format) == ("resnet18", 512, "random-init")
    assert (control.mean, control.input_size, control.source.path) == (None, 224, None)
    assert not control.training
    first = next(iter(control.state_dict().values()))
    assert torch.equal(first, next(iter(again.state_dict().values())))
    assert not torch.equal(first, next(iter(other.state_dict().values())))
    assert not torch.equal(first, next(iter(loaded.state_dict().values())))
    before = torch.random.get_rng_state()
    backbones.random_like(loaded, seed=5)
    assert torch.equal(before, torch.random.get_rng_state())


def test_create_returns_a_feature_extractor():
    model = backbones.create("resnet18").eval()
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 512)
    vit = backbones.create("vit_small_patch16", img_size=32).eval()
    assert vit(torch.zeros(2, 3, 32, 32)).shape == (2, 384)


def test_torchvision_and_timm_names_for_the_same_weights(tmp_path):
    """timm ResNet key names are torchvision's: a timm-style plain file loads as the torchvision arch."""
    model = torchvision.models.resnet34().eval()
    sd = state(model)
    path = save(
        {"state_dict_ema": {}, "state_dict": {"module." + k: v for k, v in sd.items()}}, tmp_path / "timm_train.pth.tar"
    )
    backbone = backbones.load(path)
    assert (backbone.format, backbone.arch) == ("plain", "resnet34")
