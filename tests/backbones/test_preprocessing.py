"""The preprocessing config: its transform, its checks, and how architectures, formats and Backbone share it."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision import transforms

import backbones
from backbones.formats import BUILTIN
from backbones.formats.base import FormatMeta
from probe.errors import ProbeValueError

PACKAGE = Path(backbones.__file__).parent


def test_transform_resizes_crops_and_normalises_as_configured():
    prep = backbones.Preprocessing(
        input_size=224, normalization=backbones.Normalization((0.5, 0.25, 0.0), (0.5, 0.5, 1.0))
    )
    steps = prep.transform().transforms
    resize = next(t for t in steps if isinstance(t, transforms.Resize))
    crop = next(t for t in steps if isinstance(t, transforms.CenterCrop))
    assert (resize.size, crop.size, resize.interpolation.value) == (256, (224, 224), "bilinear")  # 224 / 0.875
    image = Image.new("RGB", (300, 260), (255, 64, 0))
    out = prep.transform()(image)
    assert out.shape == (3, 224, 224)
    expected = torch.tensor([(1.0 - 0.5) / 0.5, (64 / 255 - 0.25) / 0.5, 0.0])
    torch.testing.assert_close(out[:, 100, 100], expected)


def test_small_inputs_keep_the_whole_image_and_raw_input_is_not_normalised():
    prep = backbones.Preprocessing(input_size=32, normalization=backbones.RAW, interpolation="bicubic")
    steps = prep.transform().transforms
    assert not any(isinstance(t, transforms.Normalize) for t in steps)
    assert prep.resize_size == 32 and backbones.Preprocessing(64, crop_pct=0.5).resize_size == 128
    assert next(t for t in steps if isinstance(t, transforms.Resize)).interpolation.value == "bicubic"
    out = prep.transform()(Image.new("L", (40, 32), 128))  # greyscale becomes RGB
    assert out.shape == (3, 32, 32) and torch.allclose(out, torch.full_like(out, 128 / 255))


def test_normalization_apply_and_invert_are_inverse():
    x = torch.rand(2, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    norm = backbones.IMAGENET
    y = norm.apply(x)
    torch.testing.assert_close(y[:, 0], (x[:, 0] - 0.485) / 0.229)
    torch.testing.assert_close(norm.invert(y), x)
    assert backbones.RAW.apply(x) is x and backbones.RAW.invert(x) is x
    unnamed = backbones.Normalization(norm.mean, norm.std)  # the name is for listings, not part of equality
    assert unnamed == norm and (unnamed.name, norm.name, backbones.RAW.name) == ("custom", "imagenet", "raw [0,1]")


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: backbones.Normalization((0.5, 0.5, 0.5), None), "both"),
        (lambda: backbones.Normalization((0.5, 0.5), (1, 1)), "3 values"),
        (lambda: backbones.Normalization((0.5, 0.5, 0.5), (1, 0, 1)), "positive"),
        (lambda: backbones.Preprocessing(input_size=0), "input_size"),
        (lambda: backbones.Preprocessing(crop_pct=1.5), "crop_pct"),
        (lambda: backbones.Preprocessing(interpolation="cubic"), "interpolation"),
        (lambda: backbones.Detection(mode="sometimes"), "detection mode"),
    ],
)
def test_bad_settings_are_refused_with_the_name_of_the_setting(build, message):
    with pytest.raises(ProbeValueError, match=message):
        build()


def test_a_format_changes_only_what_its_family_fixes():
    default = backbones.get_arch("resnet18_cifar").preprocessing
    assert (default.input_size, default.normalization) == (32, backbones.CIFAR)
    changed = FormatMeta(normalization=backbones.RAW, interpolation="bicubic").preprocessing(default)
    assert changed == backbones.Preprocessing(32, backbones.RAW, interpolation="bicubic")
    assert FormatMeta().preprocessing(default) == default


def test_backbone_exposes_its_preprocessing(tmp_path):
    torch.manual_seed(0)
    model = backbones.create("resnet_small")
    path = tmp_path / "small.pth"
    torch.save(model.state_dict(), path)
    loaded = backbones.load(path)
    assert loaded.preprocessing == backbones.get_arch("resnet_small").preprocessing
    assert (loaded.mean, loaded.std, loaded.input_size) == (backbones.IMAGENET.mean, backbones.IMAGENET.std, 64)
    control = backbones.random_like(loaded, seed=1)
    assert control.preprocessing == loaded.preprocessing


def _imports(module: Path) -> set[str]:
    """Modules of this package a file imports at its top level, as dotted names relative to the package."""
    tree = ast.parse(module.read_text())
    package = module.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    found = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(package[: len(package) - node.level + 1])
            target = ".".join(base + ([node.module] if node.module else []))
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def test_the_two_registries_do_not_import_each_other():
    registry, formats_base = PACKAGE / "registry.py", PACKAGE / "formats" / "base.py"
    assert not any(name.startswith("backbones.formats") for name in _imports(registry))
    assert "backbones.registry" not in _imports(formats_base)
    assert "backbones.plugins" in _imports(registry) and "backbones.plugins" in _imports(formats_base)


def test_every_format_module_is_one_builtin_entry():
    """Adding a format is one module with a SPEC plus one entry in formats.BUILTIN, in listing order."""
    modules = sorted(p.stem for p in (PACKAGE / "formats").glob("*.py") if not p.stem.startswith("_"))
    with_spec = [m for m in modules if hasattr(importlib.import_module(f"backbones.formats.{m}"), "SPEC")]
    assert sorted(BUILTIN) == with_spec
    builtin = [f.name for f in backbones.list_formats() if f.origin == "builtin"]
    assert builtin == [importlib.import_module(f"backbones.formats.{m}").SPEC.name for m in BUILTIN]
