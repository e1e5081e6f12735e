"""SimCLR v2 (Separius converter layout): sk0 against torchvision, sk1 against a functional reading of the keys."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

import backbones
from backbones.archmatch import signature
from backbones.archs.simclr_v2 import SimCLRv2ResNet
from tests.support.layouts import assert_same_features, save, torchvision_resnet

_TV_TO_CONVERTER = [
    (r"^conv1\.weight$", "net.0.0.weight"),
    (r"^bn1\.(.+)$", r"net.0.1.0.\1"),
    (r"^layer(\d)\.(\d+)\.conv1\.weight$", r"net.\1.blocks.\2.net.0.weight"),
    (r"^layer(\d)\.(\d+)\.bn1\.(.+)$", r"net.\1.blocks.\2.net.1.0.\3"),
    (r"^layer(\d)\.(\d+)\.conv2\.weight$", r"net.\1.blocks.\2.net.2.weight"),
    (r"^layer(\d)\.(\d+)\.bn2\.(.+)$", r"net.\1.blocks.\2.net.3.0.\3"),
    (r"^layer(\d)\.(\d+)\.conv3\.weight$", r"net.\1.blocks.\2.net.4.weight"),
    (r"^layer(\d)\.(\d+)\.bn3\.(.+)$", r"net.\1.blocks.\2.net.5.0.\3"),
    (r"^layer(\d)\.(\d+)\.downsample\.0\.weight$", r"net.\1.blocks.\2.projection.shortcut.weight"),
    (r"^layer(\d)\.(\d+)\.downsample\.1\.(.+)$", r"net.\1.blocks.\2.projection.bn.0.\3"),
]


def to_converter_key(key: str) -> str:
    """torchvision ResNet-50 key -> the key Separius/SimCLRv2-Pytorch writes for an sk0 model."""
    for pattern, repl in _TV_TO_CONVERTER:
        if re.match(pattern, key):
            return re.sub(pattern, repl, key)
    raise AssertionError(f"unmapped key {key}")


def head_entry() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    head = {}
    for i, (a, b) in zip((0, 3, 6), ((2048, 2048), (2048, 2048), (2048, 128))):
        head[f"layers.{i}.weight"] = torch.randn(b, a, generator=g)
        for name, size in (("weight", b), ("bias", b), ("running_mean", b), ("running_var", b)):
            head[f"layers.{i + 1}.{name}"] = torch.rand(size, generator=g)
    return head


def test_sk0_matches_torchvision_resnet50(tmp_path):
    reference = torchvision_resnet("resnet50", seed=30)
    resnet = {to_converter_key(k): v for k, v in reference.state_dict().items()}
    resnet["fc.weight"], resnet["fc.bias"] = torch.randn(1000, 2048), torch.randn(1000)
    path = save({"resnet": resnet, "head": head_entry()}, tmp_path / "r50_1x_sk0.pth")
    backbone = backbones.load(path)
    assert (backbone.format, backbone.arch) == ("simclr_v2", "simclr_v2_r50_1x_sk0")
    assert backbone.mean is None
    assert_same_features(backbone, reference, 64)
    report = backbones.inspect(path)
    assert report.dropped_summary == ["fc.* (2)"] and "head" in report.ignored_entries


@pytest.mark.parametrize("width", [2, 3])
def test_wider_sk0_is_the_every_width_resnet(width):
    """At 2x/3x the converter's ResNet widens every channel exactly as the scaled torchvision-key ResNet does."""
    from torchvision.models.resnet import Bottleneck

    from backbones.archs.resnets import ScaledResNet

    with torch.device("meta"):
        scaled = ScaledResNet(Bottleneck, [3, 4, 6, 3], width=width)
    mapped = {to_converter_key(k): tuple(v.shape) for k, v in scaled.state_dict().items()}
    assert mapped == signature(backbones.get_arch(f"simclr_v2_r50_{width}x_sk0"), {})


def _bn(sd, prefix, x):
    return F.batch_norm(
        x, sd[prefix + "running_mean"], sd[prefix + "running_var"], sd[prefix + "weight"], sd[prefix + "bias"], eps=1e-5
    )


def _conv(sd, key, x, stride=1):
    w = sd[key]
    return F.conv2d(x, w, stride=stride, padding=(w.shape[-1] - 1) // 2)


def reference_sk1(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """SimCLR v2 sk1 forward read directly from the converter's keys (functional, no modules)."""
    x = F.relu(_bn(sd, "net.0.1.0.", _conv(sd, "net.0.0.weight", x, 2)))
    x = F.relu(_bn(sd, "net.0.3.0.", _conv(sd, "net.0.2.weight", x)))
    x = _conv(sd, "net.0.4.weight", x)
    x = F.max_pool2d(F.relu(_bn(sd, "net.0.5.0.", x)), 3, 2, 1)
    for stage in range(1, 5):
        count = len({k.split(".")[3] for k in sd if k.startswith(f"net.{stage}.blocks.")})
        for block in range(count):
            p = f"net.{stage}.blocks.{block}."
            stride = 2 if stage > 1 and block == 0 else 1
            if block == 0:
                short = F.avg_pool2d(F.pad(x, (0, 1, 0, 1)), 2, stride)
                short = _bn(sd, p + "projection.bn.0.", F.conv2d(short, sd[p + "projection.shortcut.2.weight"]))
            else:
                short = x
            y = F.relu(_bn(sd, p + "net.1.0.", _conv(sd, p + "net.0.weight", x)))
            both = F.relu(_bn(sd, p + "net.2.main_conv.1.0.", _conv(sd, p + "net.2.main_conv.0.weight", y, stride)))
            a, b = both.chunk(2, dim=1)
            g = (a + b).mean(dim=(2, 3), keepdim=True)
            g = F.relu(_bn(sd, p + "net.2.mixing_conv.1.0.", F.conv2d(g, sd[p + "net.2.mixing_conv.0.weight"])))
            la, lb = F.conv2d(g, sd[p + "net.2.mixing_conv.2.weight"]).chunk(2, dim=1)
            top = torch.maximum(la, lb)  # softmax over the two branches, per channel
            ea, eb = torch.exp(la - top), torch.exp(lb - top)
            y = (a * ea + b * eb) / (ea + eb)
            y = _bn(sd, p + "net.4.0.", _conv(sd, p + "net.3.weight", y))
            x = F.relu(short + y)
    return x.mean(dim=(2, 3))


def test_sk1_matches_a_functional_reading_of_its_keys(tmp_path):
    shapes = signature(backbones.get_arch("simclr_v2_r50_1x_sk1"), {})
    # Facts of the converter's sk1 layout (SK ratio 1/16, at least 32 mixing channels, 3-conv stem).
    assert shapes["net.0.0.weight"] == (32, 3, 3, 3) and shapes["net.0.4.weight"] == (64, 32, 3, 3)
    assert shapes["net.1.blocks.0.net.2.main_conv.0.weight"] == (128, 64, 3, 3)
    assert shapes["net.1.blocks.0.net.2.mixing_conv.0.weight"] == (32, 64, 1, 1)
    assert shapes["net.4.blocks.0.net.2.mixing_conv.0.weight"] == (32, 512, 1, 1)
    assert shapes["net.1.blocks.0.projection.shortcut.2.weight"] == (256, 64, 1, 1)
    g = torch.Generator().manual_seed(31)
    resnet = {}
    for key, shape in shapes.items():
        if key.endswith("running_var") or key.endswith(".0.weight") and len(shape) == 1:
            resnet[key] = torch.rand(shape, generator=g) * 0.5 + 0.5
        elif key.endswith("num_batches_tracked"):
            resnet[key] = torch.tensor(7)
        elif len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            resnet[key] = torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5
        else:
            resnet[key] = torch.randn(shape, generator=g) * 0.1
    path = save({"resnet": resnet, "head": head_entry()}, tmp_path / "r50_1x_sk1.pth")
    backbone = backbones.load(path)
    assert backbone.arch == "simclr_v2_r50_1x_sk1"
    x = torch.randn(2, 3, 64, 64, generator=g)
    with torch.no_grad():
        got, want = backbone(x), reference_sk1(resnet, x)
    # Two implementations sum in different orders over 16 blocks: equal to float32 precision of the features' scale.
    torch.testing.assert_close(got, want, atol=1e-5 * float(want.abs().max()), rtol=0)
    assert float(want.std()) > 0.1
    assert isinstance(backbone.model, SimCLRv2ResNet)
