"""Strict loading: after stripping and dropping heads, any missing, extra or misshapen key is an error that lists it."""

from __future__ import annotations

import pytest
import torch
import torchvision

import backbones
from backbones import ArchitectureError
from backbones.archmatch import compare, shapes_of, signature
from backbones.archs.small_resnet import SmallResNet
from probe.errors import ProbeValueError
from tests.support.layouts import save, state


@pytest.fixture
def small_sd() -> dict[str, torch.Tensor]:
    torch.manual_seed(5)
    return state(SmallResNet().eval())


def test_leftover_prefix_never_loads_nothing(tmp_path, small_sd):
    """A MoCo file whose encoder was wrapped twice keeps a `module.` after the known prefix is stripped."""
    path = save(
        {"state_dict": {f"module.encoder_q.module.{k}": v for k, v in small_sd.items()}}, tmp_path / "twice.pth.tar"
    )
    with pytest.raises(ArchitectureError, match="no registered architecture matches"):
        backbones.load(path)
    with pytest.raises(ArchitectureError) as info:
        backbones.load(path, arch="resnet_small")
    message = str(info.value)
    assert "60 missing keys: conv1.weight" in message and "unexpected keys: module.conv1.weight" in message
    assert "leftover prefix 'module.'" in message
    report = backbones.inspect(path, arch="resnet_small")
    assert not report.loadable and len(report.unexpected) == len(small_sd) and "conv1.weight" in report.missing


def test_missing_key_is_listed(tmp_path, small_sd):
    del small_sd["layer3.0.bn1.running_mean"]
    path = save(small_sd, tmp_path / "missing.pth")
    with pytest.raises(ArchitectureError, match=r"Closest: resnet_small: 1 missing key: layer3\.0\.bn1\.running_mean"):
        backbones.load(path)
    with pytest.raises(ArchitectureError, match=r"1 missing key: layer3\.0\.bn1\.running_mean"):
        backbones.load(path, arch="resnet_small")


def test_extra_key_is_listed(tmp_path, small_sd):
    small_sd["layer1.0.se.fc.weight"] = torch.zeros(4, 16)
    path = save(small_sd, tmp_path / "extra.pth")
    with pytest.raises(ArchitectureError, match=r"1 unexpected key: layer1\.0\.se\.fc\.weight"):
        backbones.load(path, arch="resnet_small")


def test_unknown_key_beside_the_known_prefix_is_not_dropped_silently(tmp_path, small_sd):
    sd = {f"module.encoder_q.{k}": v for k, v in small_sd.items()}
    sd["module.adapter.weight"] = torch.zeros(3)
    path = save({"state_dict": sd}, tmp_path / "moco_plus.pth.tar")
    report = backbones.inspect(path, arch="resnet_small")
    assert report.format == "moco" and report.unexpected == ["module.adapter.weight"] and not report.loadable
    with pytest.raises(ArchitectureError, match=r"module\.adapter\.weight"):
        backbones.load(path)


def test_missing_batchnorm_counters_are_not_an_error(tmp_path, small_sd):
    sd = {k: v for k, v in small_sd.items() if not k.endswith("num_batches_tracked")}
    path = save({"state_dict": sd, "arch": "x"}, tmp_path / "no_counters.pth")
    assert backbones.load(path).arch == "resnet_small"


def test_wrong_architecture_for_the_weights(tmp_path):
    torch.manual_seed(6)
    path = save(torchvision.models.resnet18().state_dict(), tmp_path / "resnet18.pth")
    with pytest.raises(ArchitectureError) as info:
        backbones.load(path, arch="resnet34")
    assert "missing keys: layer1.2.conv1.weight" in str(info.value)
    with pytest.raises(
        ArchitectureError, match=r"shape mismatch.*conv1\.weight \(checkpoint \[64, 3, 7, 7\], model \[64, 3, 3, 3\]\)"
    ):
        backbones.load(path, arch="resnet18_cifar")


def test_simclr_2x_weights_are_not_torchvision_wide_resnet():
    """SimCLR/SwAV 2x widen every stage incl. the stem; wide_resnet50_2 fails on shapes, never silently."""
    from torchvision.models.resnet import Bottleneck

    from backbones.archs.resnets import ScaledResNet

    with torch.device("meta"):
        shapes = shapes_of(ScaledResNet(Bottleneck, [3, 4, 6, 3], width=2).state_dict())
    diff = compare(signature(backbones.get_arch("wide_resnet50_2"), {}), shapes)
    assert ("conv1.weight", (128, 3, 7, 7), (64, 3, 7, 7)) in diff.mismatched and not diff.missing
    assert compare(signature(backbones.get_arch("resnet50w2"), {}), shapes).ok


def test_unknown_names_list_the_valid_ones(tmp_path, small_sd):
    path = save(small_sd, tmp_path / "small.pth")
    with pytest.raises(
        backbones.CheckpointError, match="unknown checkpoint format 'mocov9'; known formats: moco, moco_v3"
    ):
        backbones.load(path, format="mocov9")
    with pytest.raises(ProbeValueError, match="unknown backbone architecture 'resnet9'; known: .*resnet18"):
        backbones.load(path, arch="resnet9")


def test_an_undetected_file_gets_a_suggestion_that_was_tried_and_works(tmp_path, small_sd):
    path = save({f"trainer.encoder.{k}": v for k, v in small_sd.items()}, tmp_path / "wrapped.pth")
    with pytest.raises(backbones.UnknownFormatError) as info:
        backbones.load(path)
    message = str(info.value)
    assert "It loads with format='plain', arch='resnet_small' (--format plain --arch resnet_small)" in message
    assert len(message.splitlines()) == 1
    with pytest.warns(backbones.BackboneWarning, match="unknown key prefix 'trainer.encoder.'"):
        loaded = backbones.load(path, format="plain", arch="resnet_small")
    assert loaded.arch == "resnet_small"


def test_a_file_no_architecture_fits_gets_no_suggestion_to_force_it(tmp_path):
    path = save({"embedding.table": torch.zeros(10, 4), "scale": torch.ones(1)}, tmp_path / "other.pth")
    with pytest.raises(backbones.UnknownFormatError) as info:
        backbones.load(path)
    message = str(info.value)
    assert "format='plain'" not in message and "No registered architecture fits its tensors" in message


def test_a_leftover_prefix_is_named_only_when_removing_it_fits_the_keys():
    keys = {"conv1.weight": (1,), "bn1.weight": (1,), "layer1.0.conv1.weight": (1,), "layer1.0.conv2.weight": (1,)}
    twice = compare(keys, {f"module.{k}": v for k, v in keys.items()})
    assert twice.leftover_prefix() == "module."
    numeric = compare(keys, {"0.weight": (1,), "1.weight": (1,), "4.0.conv1.weight": (1,), "4.0.conv2.weight": (1,)})
    assert numeric.leftover_prefix() is None and "leftover" not in numeric.describe()
