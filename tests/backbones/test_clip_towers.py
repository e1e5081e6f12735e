"""CLIP image towers written by open_clip itself load to the features of open_clip's own ``encode_image``."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from timm.models.vision_transformer import VisionTransformer

import backbones
from tests.support.layouts import randomize_norms, save
from tests.support.vit_references import jitter

open_clip = pytest.importorskip("open_clip")
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg  # noqa: E402

CLIP_STATS = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
OPENAI_MARKS = {"input_resolution": torch.tensor(32), "context_length": torch.tensor(8), "vocab_size": torch.tensor(50)}


def clip_model(vision: CLIPVisionCfg, *, quick_gelu: bool, seed: int) -> CLIP:
    torch.manual_seed(seed)
    text = CLIPTextCfg(context_length=8, vocab_size=50, width=64, heads=2, layers=1)
    model = CLIP(embed_dim=48, vision_cfg=vision, text_cfg=text, quick_gelu=quick_gelu)
    return randomize_norms(jitter(model, seed, scale=0.05), seed).eval()


def vit_model(quick_gelu: bool, seed: int = 41) -> CLIP:
    return clip_model(
        CLIPVisionCfg(layers=2, width=128, patch_size=16, image_size=32), quick_gelu=quick_gelu, seed=seed
    )


def image_features(model: CLIP, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.encode_image(x)


def assert_clip_features(backbone, model: CLIP, size: int) -> None:
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = backbone(x)
    torch.testing.assert_close(got, image_features(model, x), atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def gelu_vit() -> CLIP:
    return vit_model(quick_gelu=False)


@pytest.fixture(scope="module")
def quickgelu_vit() -> CLIP:
    return vit_model(quick_gelu=True, seed=42)


def test_open_clip_vit_needs_the_activation_named(gelu_vit, tmp_path):
    path = save(gelu_vit.state_dict(), tmp_path / "open_clip_model.bin")
    report = backbones.inspect(path)
    assert report.format == "clip" and not report.loadable
    assert "clip_vit, clip_vit_quickgelu" in report.problems[0]
    assert any("GELU" in note and "QuickGELU" in note for note in report.notes)
    with pytest.raises(backbones.ArchitectureError, match="activation"):
        backbones.load(path)
    backbone = backbones.load(path, arch="clip_vit")
    assert type(backbone.model) is VisionTransformer
    assert backbone.arch_kwargs == {"width": 128, "layers": 2, "img_size": 32, "output_dim": 48}
    assert (backbone.mean, backbone.std, backbone.input_size) == (*CLIP_STATS, 32)
    assert backbone.preprocessing.interpolation == "bicubic" and backbone.preprocessing.resize_size == 32
    assert_clip_features(backbone, gelu_vit, 32)
    wrong = backbones.load(path, arch="clip_vit_quickgelu")
    x = torch.randn(2, 3, 32, 32)
    assert not torch.allclose(wrong(x), backbone(x), atol=1e-3)


def test_openai_weights_select_quickgelu(quickgelu_vit, tmp_path):
    """The state dict of OpenAI's TorchScript release: fp16, with input_resolution/context_length/vocab_size."""
    sd = {k: v.half() for k, v in quickgelu_vit.state_dict().items()} | OPENAI_MARKS
    backbone = backbones.load(save(sd, tmp_path / "ViT-B-16-state.pt"))
    assert (backbone.format, backbone.arch) == ("clip", "clip_vit_quickgelu")
    rounded = vit_model(quick_gelu=True, seed=0)
    rounded.load_state_dict({k: v.float() for k, v in sd.items() if k not in OPENAI_MARKS})
    assert_clip_features(backbone, rounded, 32)


def test_open_clip_training_checkpoint_with_a_quickgelu_run_name(quickgelu_vit, tmp_path):
    sd = {f"module.{k}": v for k, v in quickgelu_vit.state_dict().items()}
    name = "2024_05_01-12_00_00-model_ViT-B-32-quickgelu-lr_0.0005-b_256-j_8-p_amp"
    path = save({"epoch": 32, "name": name, "state_dict": sd, "optimizer": {}}, tmp_path / "epoch_32.pt")
    backbone = backbones.load(path)
    assert backbone.arch == "clip_vit_quickgelu"
    assert_clip_features(backbone, quickgelu_vit, 32)
    report = backbones.inspect(path)
    assert report.weights_at == "state_dict" and "module.token_embedding.weight" in report.dropped
    assert not any(k.startswith("module.visual.") for k in report.dropped)


def test_visual_tower_alone(quickgelu_vit, tmp_path):
    path = save(quickgelu_vit.visual.state_dict(), tmp_path / "visual.pt")
    backbone = backbones.load(path, arch="clip_vit_quickgelu")
    assert backbone.format == "clip" and backbones.inspect(path).dropped == []
    assert_clip_features(backbone, quickgelu_vit, 32)


def test_modified_resnet_tower(tmp_path):
    model = clip_model(CLIPVisionCfg(layers=[1, 2, 1, 1], width=16, image_size=64), quick_gelu=True, seed=43)
    backbone = backbones.load(save(model.state_dict(), tmp_path / "RN50.pt"))
    assert (backbone.format, backbone.arch) == ("clip", "clip_resnet")
    assert backbone.arch_kwargs == {"layers": (1, 2, 1, 1), "width": 16, "img_size": 64, "output_dim": 48}
    assert (backbone.mean, backbone.input_size, backbone.feature_dim) == (CLIP_STATS[0], 64, 48)
    assert_clip_features(backbone, model, 64)


def test_torchscript_archive_is_refused_without_running_it(tmp_path):
    path = tmp_path / "ViT-B-32.pt"
    torch.jit.script(nn.Sequential(nn.Linear(4, 4))).save(str(path))
    with pytest.raises(backbones.UnsafeCheckpointError, match=r"TorchScript archive.*torch\.jit\.load\('ViT-B-32\.pt'"):
        backbones.load(path)
    with pytest.raises(backbones.UnsafeCheckpointError, match="open_clip"):
        backbones.inspect(path)
