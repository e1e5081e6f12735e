"""Checkpoints load through ``backbones.load`` as their native format, and the shipped ones match MANIFEST.json."""

from __future__ import annotations

import json

import pytest
import torch

import backbones
from backbones.archs.small_resnet import SmallResNet
from probe.demo import checkpoints
from probe.demo.measure import preprocess
from probe.demo.pretrain import pretrain, recipe
from tests.support.demo import TINY_ARCH, tiny_recipe

EXPECTED_FORMAT = {method: fmt for method, (_, fmt) in checkpoints.FILES.items()}
#: Tiny architectures for the written-checkpoint test: the recipe's own family, a fraction of its size.
TINY_ARCHS = {"supervised_vit": ("vit_mini_patch8", {"img_size": 16, "depth": 1})}


@backbones.register(
    "resnet_small_demo_test",
    preprocessing=backbones.Preprocessing(input_size=32),
    description="tiny SmallResNet for tests",
)
def _tiny(**kwargs) -> SmallResNet:
    return SmallResNet(**{**TINY_ARCH, **kwargs})


@pytest.mark.parametrize("method", sorted(checkpoints.FILES))
def test_written_checkpoint_loads_as_its_format_with_the_same_features(method, tmp_path):
    arch, kwargs = TINY_ARCHS.get(method, ("resnet_small_demo_test", {}))
    r = tiny_recipe(method, arch=arch, arch_kwargs=kwargs)
    path = tmp_path / f"{method}.pth"
    torch.manual_seed(0)
    pretrain(r, path, progress=False)
    loaded = backbones.load(path)
    assert loaded.format == EXPECTED_FORMAT[method] and (loaded.arch, loaded.arch_kwargs) == (arch, kwargs)
    assert (loaded.mean is None) == (method == "simclr")
    # the loader's backbone computes what the trained backbone computes, under the loader's normalisation
    saved = torch.load(path, weights_only=True)
    state = {
        "simclr": lambda: saved["state_dict"],
        "moco": lambda: {
            k.removeprefix("module.encoder_q."): v
            for k, v in saved["state_dict"].items()
            if k.startswith("module.encoder_q.")
        },
        "supervised_vit": lambda: saved["model"],  # DeiT's layout, the classifier as timm's head
    }.get(method, lambda: saved)()
    vit = method in TINY_ARCHS
    reference = (backbones.create(arch, **kwargs) if vit else _tiny()).eval()
    head = "head." if vit else "fc."
    reference.load_state_dict({k: v for k, v in state.items() if not k.startswith(head)}, strict=vit)
    size = kwargs.get("img_size", 32)
    x = preprocess(torch.rand(4, 3, size, size), normalize=method != "simclr")
    with torch.no_grad():
        assert torch.allclose(loaded(x), reference(x), atol=1e-5)


def test_shipped_checkpoints_match_their_manifest():
    data = checkpoints.manifest()
    assert sorted(entry["method"] for entry in data["files"].values()) == sorted(checkpoints.FILES)
    total = 0
    for name, entry in data["files"].items():
        path = checkpoints.CHECKPOINT_DIR / name
        assert path == checkpoints.checkpoint_path(entry["method"])
        assert checkpoints.sha256(path) == entry["sha256"], name
        assert path.stat().st_size == entry["bytes"]
        assert entry["format"] == EXPECTED_FORMAT[entry["method"]]
        assert {"nmi", "nmi_single", "probe_acc"} <= set(entry["metrics"])
        assert f"--method {entry['method']}" in entry["command"] and f"--seed {entry['seed']}" in entry["command"]
        # the recorded recipe is the one the command rebuilds today
        assert entry["recipe"] == json.loads(json.dumps(recipe(entry["method"]).to_json())), name
        total += path.stat().st_size
    assert total <= 20 * 1024 * 1024
    assert "random_init" in data["controls"]


@pytest.mark.parametrize("method", sorted(checkpoints.FILES))
def test_shipped_checkpoint_loads_through_backbones_load(method):
    loaded = backbones.load(checkpoints.checkpoint_path(method))
    assert loaded.format == EXPECTED_FORMAT[method] and loaded.arch == recipe(method).arch
    with torch.no_grad():
        assert loaded(torch.rand(2, 3, 64, 64)).shape == (2, loaded.feature_dim)
