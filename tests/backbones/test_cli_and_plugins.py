"""`probe backbones list|inspect`, and third-party architectures by decorator and by entry point."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import backbones
from backbones import registry
from backbones.archs.small_resnet import SmallResNet
from backbones.formats import base as format_base
from probe import cli
from probe.errors import ProbeValueError
from tests.support.layouts import assert_same_features, save, state

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def moco_file(tmp_path) -> Path:
    torch.manual_seed(11)
    sd = state(SmallResNet(), "module.encoder_q.")
    sd["module.encoder_q.fc.weight"], sd["module.encoder_q.fc.bias"] = torch.zeros(16, 128), torch.zeros(16)
    sd["module.queue"] = torch.zeros(16, 32)
    return save({"state_dict": sd, "epoch": 3}, tmp_path / "moco.pth.tar")


@pytest.fixture
def private_registries(monkeypatch):
    """Registrations made by a test go to copies of the registries, dropped afterwards."""
    monkeypatch.setattr(registry, "_ARCHS", dict(registry._ARCHS))
    monkeypatch.setattr(format_base, "_FORMATS", dict(format_base._FORMATS))


def test_inspect_prints_every_field(moco_file, capsys):
    assert cli.main(["backbones", "inspect", str(moco_file)]) == 0
    out = capsys.readouterr().out
    expected = {
        "format:": "moco - MoCo v1/v2",
        "architecture:": "resnet_small",
        "parameters:": f"{sum(p.numel() for p in SmallResNet().parameters()):,}",
        "feature dim:": "128",
        "normalisation:": "mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)",
        "dropped (heads):": "module.encoder_q.fc.* (2), module.queue",
        "ignored entries:": "epoch",
        "leftover keys:": "none",
        "loadable:": "yes",
    }
    lines = {line.split(":", 1)[0] + ":": line.split(":", 1)[1].strip() for line in out.splitlines() if ":" in line}
    for field, value in expected.items():
        assert lines[field.rstrip(":") + ":"] == value, (field, out)
    assert "sha256:" in out and "preprocess:" in out and "Resize(size=64" in out


def test_inspect_of_a_file_that_would_not_load_exits_1(moco_file, capsys):
    assert cli.main(["backbones", "inspect", str(moco_file), "--arch", "resnet18"]) == 1
    out = capsys.readouterr().out
    assert "PROBLEM:" in out and "loadable:        no" in out and "shape mismatch" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["inspect", "missing.pth"], "missing.pth: no such file"),
        (["inspect", "{moco}", "--format", "nope"], "unknown checkpoint format 'nope'"),
        (["inspect", "{moco}", "--arch", "nope"], "unknown backbone architecture 'nope'"),
        (["inspect", "{evil}"], "refused to load"),
    ],
)
def test_expected_errors_are_one_line_and_exit_2(args, message, moco_file, tmp_path, capsys):
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(b"\x80\x02}q\x00.")
    args = [a.format(moco=moco_file, evil=evil) for a in args]
    assert cli.main(["backbones", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("probe backbones: error: ") and message in err[0]


def test_list_shows_formats_and_architectures(capsys):
    assert cli.main(["backbones", "list"]) == 0
    out = capsys.readouterr().out
    for name in (
        "moco_v3",
        "simclr_v2",
        "solo_learn",
        "vissl",
        "plain",
        "resnet50w2",
        "simclr_v2_r50_1x_sk0",
        "vit_small_patch16_mocov3",
        "resnet_small",
    ):
        assert f"  {name} " in out
    assert ".safetensors" in out and "TorchScript archives" in out.split("refused:")[1]
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("  ")}
    normalisations = {name: rows[name][3] for name in ("clip_vit", "clip_resnet", "resnet50", "resnet18_cifar")}
    assert normalisations == {
        "clip_vit": "clip",
        "clip_resnet": "clip",
        "resnet50": "imagenet",
        "resnet18_cifar": "cifar",
    }
    assert rows["simclr_v2_r50_1x_sk0"][3:5] == ["raw", "[0,1]"]


def test_decorator_registration(private_registries, tmp_path, capsys):
    @backbones.register("tiny_test_net", preprocessing=backbones.Preprocessing(32, backbones.RAW))
    def tiny_test_net() -> nn.Module:
        """Two convolutions and a pooled output."""
        return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 6, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())

    torch.manual_seed(12)
    model = tiny_test_net().eval()
    path = save(state(model), tmp_path / "tiny.pth")
    with pytest.raises(backbones.FormatDetectionError, match="could not detect"):
        backbones.load(path)
    backbone = backbones.load(path, arch="tiny_test_net")  # a dict of unknown keys is 'plain' once arch= is given
    assert (backbone.format, backbone.arch, backbone.feature_dim, backbone.mean) == ("plain", "tiny_test_net", 6, None)
    assert_same_features(backbone, model, 32)
    assert backbones.get_arch("tiny_test_net").origin == f"user:{__name__}"
    with pytest.raises(ProbeValueError, match="already registered"):
        backbones.register("tiny_test_net")(lambda: nn.Identity())
    cli.main(["backbones", "list"])
    assert "tiny_test_net" in capsys.readouterr().out


def test_a_user_architecture_with_builtin_shapes_does_not_steal_detection(private_registries, tmp_path):
    backbones.register("my_small_copy")(lambda: SmallResNet())
    torch.manual_seed(13)
    report = backbones.inspect(save(state(SmallResNet()), tmp_path / "s.pth"))
    assert report.arch == "resnet_small" and any("my_small_copy" in note for note in report.notes)


def test_a_user_format(private_registries, tmp_path):
    def detect(obj):
        return (
            format_base.Match(3, ("key 'my_trainer_backbone'",))
            if isinstance(obj, dict) and "my_trainer_backbone" in obj
            else None
        )

    def extract(obj):
        sd = obj["my_trainer_backbone"]
        return format_base.Extraction(
            dict(sd), [], format_base.FormatMeta(container="my_trainer_backbone", container_keys=tuple(sd))
        )

    backbones.register_format(
        format_base.FormatSpec("my_trainer", "My trainer", detect, extract, signal="my_trainer_backbone")
    )
    torch.manual_seed(14)
    model = SmallResNet().eval()
    backbone = backbones.load(save({"my_trainer_backbone": state(model), "step": 3}, tmp_path / "mine.pt"))
    assert (backbone.format, backbone.arch) == ("my_trainer", "resnet_small")
    assert_same_features(backbone, model, 64)
    assert [f for f in backbones.list_formats() if f.name == "my_trainer"][0].origin == f"user:{__name__}"


PLUGIN_MODULE = '''
"""A third-party package adding a backbone and a checkpoint format."""
import torch.nn as nn
import backbones
from backbones.formats.base import Extraction, FormatMeta, FormatSpec, Match


def plugin_arch():
    """A plugin backbone: one convolution, pooled."""
    return nn.Sequential(nn.Conv2d(3, 5, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())


@backbones.register("plugin_deco_arch", preprocessing=backbones.Preprocessing(input_size=32))
def plugin_deco_arch():
    """Registered by decorator when the plugin module is imported."""
    return nn.Sequential(nn.Conv2d(3, 4, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def _detect(obj):
    return Match(3, ("a 'plugin_weights' entry",)) if isinstance(obj, dict) and "plugin_weights" in obj else None


def _extract(obj):
    sd = obj["plugin_weights"]
    return Extraction(dict(sd), [], FormatMeta(container="plugin_weights", container_keys=tuple(sd)))


backbones.register_format(
    FormatSpec("plugin_format", "A plugin's trainer", _detect, _extract, signal="plugin_weights entry")
)
'''

LOAD_SCRIPT = """
import sys, torch, backbones
torch.manual_seed(0)
import fake_plugin
model = fake_plugin.plugin_arch().eval()
torch.save(model.state_dict(), sys.argv[1])
loaded = backbones.load(sys.argv[1], arch="plugin_arch")
x = torch.randn(2, 3, 32, 32)
assert torch.allclose(loaded(x), model(x), atol=1e-6), "features differ"
torch.save({"plugin_weights": model.state_dict()}, sys.argv[1])
again = backbones.load(sys.argv[1], arch="plugin_arch")
print("loaded", loaded.arch, loaded.feature_dim, again.format)
"""


def test_entry_point_plugin_for_real(tmp_path):
    """A distribution whose metadata declares `probe.backbones` entry points, found by importlib.metadata."""
    site = tmp_path / "site"
    dist_info = site / "fake_plugin-0.1.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-plugin\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(
        "[probe.backbones]\nplugin_arch = fake_plugin:plugin_arch\nfake_plugin_module = fake_plugin\n"
    )
    (site / "fake_plugin.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(REPO)]))
    listed = subprocess.run(
        [sys.executable, "-m", "probe", "backbones", "list"], env=env, capture_output=True, text=True, timeout=300
    )
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines() if line.startswith("  ")}
    assert "plugin:fake-plugin" in rows["plugin_arch"] and "A plugin backbone" in rows["plugin_arch"]
    assert "plugin:fake-plugin" in rows["plugin_deco_arch"]
    assert "plugin_weights entry" in rows["plugin_format"] and "plugin:fake-plugin" in rows["plugin_format"]
    loaded = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(tmp_path / "p.pth")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == ["loaded", "plugin_arch", "5", "plugin_format"]
