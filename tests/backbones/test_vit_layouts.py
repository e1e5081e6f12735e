"""ViT checkpoint layouts (DINOv2, MAE, iBOT, MoCo v3, CLIP): a tiny model written in each exact layout loads
to the features its family's own code computes (tests/support/vit_references.py; open_clip itself for CLIP)."""

from __future__ import annotations

import argparse

import pytest
import torch
from timm.layers import resample_abs_pos_embed
from timm.models.vision_transformer import VisionTransformer

import backbones
from tests.support.layouts import IMAGENET, save, state, zeros_like_keys
from tests.support.vit_references import dinov2_features, jitter, timm_vit_features

DINOV2_STORED_GRID = 37  # DINOv2 releases are 518 px models: 37 x 37 patches of 14 px


def timm_vit(dim: int, heads: int, depth: int, patch: int, img_size: int, seed: int, **kw) -> VisionTransformer:
    torch.manual_seed(seed)
    model = VisionTransformer(
        img_size=img_size, patch_size=patch, embed_dim=dim, depth=depth, num_heads=heads, num_classes=0, **kw
    )
    return jitter(model, seed)


def assert_features(backbone, want: torch.Tensor, x: torch.Tensor) -> None:
    with torch.no_grad():
        got = backbone(x)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def inputs(size: int, n: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------- DINOv2


@pytest.fixture(scope="module")
def dinov2_ref() -> VisionTransformer:
    return timm_vit(384, 6, 2, 14, 14 * DINOV2_STORED_GRID, seed=31, init_values=1e-5)


def dinov2_layout(ref: VisionTransformer, *, registers: int = 0, chunks: int = 0) -> dict[str, torch.Tensor]:
    """The keys of dinov2/hub's bare state dicts (or of a model built with block_chunks)."""
    sd = state(ref)
    sd["mask_token"] = torch.zeros(1, 384)
    if registers:
        sd["register_tokens"] = torch.randn(1, registers, 384, generator=torch.Generator().manual_seed(32))
    if chunks:
        per_chunk = len(ref.blocks) // chunks
        sd = {
            (
                f"blocks.{int(k.split('.')[1]) // per_chunk}.{k.removeprefix('blocks.')}"
                if k.startswith("blocks.")
                else k
            ): v
            for k, v in sd.items()
        }
    return sd


@pytest.mark.parametrize(
    "registers, chunks, kwargs",
    [(0, 0, {"depth": 2}), (4, 0, {"depth": 2, "reg_tokens": 4}), (0, 2, {"depth": 2})],
    ids=["plain", "reg4", "block_chunks"],
)
def test_dinov2_features_at_224_are_dinov2s(dinov2_ref, tmp_path, registers, chunks, kwargs):
    sd = dinov2_layout(dinov2_ref, registers=registers, chunks=chunks)
    path = save(sd, tmp_path / "dinov2_vits14_pretrain.pth")
    backbone = backbones.load(path)
    assert (backbone.format, backbone.arch, backbone.arch_kwargs) == ("dinov2", "vit_small_patch14_dinov2", kwargs)
    assert type(backbone.model) is VisionTransformer and backbone.model.patch_embed.grid_size == (16, 16)
    assert (backbone.input_size, backbone.preprocessing.interpolation) == (224, "bicubic")
    assert (backbone.mean, backbone.std) == IMAGENET
    x = inputs(224)
    assert_features(backbone, dinov2_features(dinov2_ref, dinov2_layout(dinov2_ref, registers=registers), x), x)
    report = backbones.inspect(path)
    assert report.dropped == ["mask_token"] and any("37x37 (518 px) to 16x16 (224 px)" in n for n in report.notes)


def test_dinov2_plain_resampling_is_not_timms(dinov2_ref, tmp_path):
    """The offset-0.1 scale factor changes the embeddings: timm's size-based resampling would not reproduce DINOv2."""
    backbone = backbones.load(save(dinov2_layout(dinov2_ref), tmp_path / "dinov2.pth"))
    timms = resample_abs_pos_embed(dinov2_ref.pos_embed.detach(), (16, 16), num_prefix_tokens=1)
    assert (backbone.model.pos_embed - timms).abs().max() > 1e-3


def test_dinov2_giant_swiglu_is_refused_by_name(dinov2_ref, tmp_path):
    sd = dinov2_layout(dinov2_ref)
    sd["blocks.0.mlp.w12.weight"] = sd.pop("blocks.0.mlp.fc1.weight")
    with pytest.raises(backbones.CheckpointError, match="SwiGLU"):
        backbones.load(save(sd, tmp_path / "dinov2_vitg14.pth"))


# ------------------------------------------------------------------------------------------------- MAE


@pytest.fixture(scope="module")
def small6_ref() -> VisionTransformer:
    return timm_vit(384, 6, 2, 16, 32, seed=38)


@pytest.fixture(scope="module")
def small12_ref() -> VisionTransformer:
    return timm_vit(384, 12, 2, 16, 32, seed=39)


@pytest.fixture(scope="module")
def tiny_ref() -> VisionTransformer:
    return timm_vit(192, 3, 2, 16, 32, seed=33)


@pytest.fixture(scope="module")
def tiny_avg_ref() -> VisionTransformer:
    return timm_vit(192, 3, 2, 16, 32, seed=34, global_pool="avg")


def mae_pretrain(ref, tmp):
    sd = state(ref)
    g = torch.Generator().manual_seed(35)
    for key, shape in [
        ("mask_token", (1, 1, 128)),
        ("decoder_embed.weight", (128, 192)),
        ("decoder_pos_embed", (1, 5, 128)),
        ("decoder_blocks.0.attn.qkv.weight", (384, 128)),
        ("decoder_norm.weight", (128,)),
        ("decoder_pred.weight", (768, 128)),
    ]:
        sd[key] = torch.randn(shape, generator=g)
    args = argparse.Namespace(model="mae_vit_tiny_patch16", mask_ratio=0.75, norm_pix_loss=True)
    obj = {"model": sd, "optimizer": {}, "epoch": 799, "scaler": {"scale": 65536.0}, "args": args}
    return save(obj, tmp / "checkpoint-799.pth")


def mae_release(ref, tmp):
    return save({"model": state(ref)}, tmp / "mae_pretrain_vit_tiny.pth")


def mae_linear_probe(ref, tmp):
    sd = state(ref)
    sd["head.0.running_mean"], sd["head.0.running_var"] = torch.randn(192), torch.rand(192) + 0.5
    sd["head.0.num_batches_tracked"] = torch.tensor(1000)
    sd["head.1.weight"], sd["head.1.bias"] = torch.randn(10, 192), torch.randn(10)
    return save({"model": sd, "optimizer": {}, "epoch": 89, "args": argparse.Namespace()}, tmp / "linprobe.pth")


def mae_finetuned(ref, tmp):
    sd = state(ref)
    sd["head.weight"], sd["head.bias"] = torch.randn(10, 192), torch.randn(10)
    return save({"model": sd, "optimizer": {}, "epoch": 99, "args": argparse.Namespace()}, tmp / "finetuned.pth")


@pytest.mark.parametrize(
    "write, ref_name, variant",
    [
        (mae_pretrain, "tiny_ref", "pretraining checkpoint"),
        (mae_release, "tiny_ref", "pretrained encoder"),
        (mae_linear_probe, "tiny_ref", "linear probe"),
        (mae_finetuned, "tiny_avg_ref", "fine-tuned"),
    ],
)
def test_mae_layouts_load_the_encoder(write, ref_name, variant, request, tmp_path):
    ref = request.getfixturevalue(ref_name)
    path = write(ref, tmp_path)
    backbone = backbones.load(path)
    mean_pool = ref_name == "tiny_avg_ref"
    kwargs = {"img_size": 32, "depth": 2, **({"global_pool": "avg"} if mean_pool else {})}
    assert (backbone.format, backbone.arch, backbone.arch_kwargs) == ("mae", "vit_tiny_patch16", kwargs)
    assert (backbone.mean, backbone.std, backbone.preprocessing.interpolation) == (*IMAGENET, "bicubic")
    x = inputs(32)
    assert_features(backbone, timm_vit_features(ref, x, mean_pool=mean_pool), x)
    report = backbones.inspect(path)
    assert report.variant.startswith(variant)
    with torch.serialization.safe_globals([argparse.Namespace]):
        file_keys = torch.load(path, weights_only=True)["model"]
    assert report.dropped == [k for k in file_keys if k.startswith(("decoder_", "mask_token", "head."))]


def test_mae_linear_probe_head_is_dropped_and_its_folding_explained(tiny_ref, tmp_path):
    report = backbones.inspect(mae_linear_probe(tiny_ref, tmp_path))
    assert report.dropped_summary == ["head.* (5)"]
    assert any("10-class probe" in n and "sqrt(var + eps)" in n for n in report.notes)


# ------------------------------------------------------------------------------------------------ iBOT


def ibot_teacher_file(ref, tmp):
    """extract_backbone_weights.py output; LayerScale under iBOT's own names gamma_1/gamma_2."""
    sd = {k.replace(".ls1.gamma", ".gamma_1").replace(".ls2.gamma", ".gamma_2"): v for k, v in state(ref).items()}
    return save({"state_dict": sd}, tmp / "checkpoint_teacher.pth")


def ibot_full(ref, tmp):
    g = torch.Generator().manual_seed(36)
    head = {
        "head.mlp.0.weight": torch.randn(64, 384, generator=g),
        "head.last_layer.weight_g": torch.ones(128, 1),
        "head.last_layer.weight_v": torch.randn(128, 64, generator=g),
        "head.last_layer2.weight_v": torch.randn(128, 64, generator=g),
    }
    teacher = {**state(ref, "backbone."), **head}
    student = zeros_like_keys(teacher, "", "module.")
    student["module.backbone.masked_embed"] = torch.zeros(1, 384)
    obj = {
        "student": student,
        "teacher": teacher,
        "optimizer": {},
        "epoch": 800,
        "args": argparse.Namespace(arch="vit_small", patch_size=16),
        "ibot_loss": {"center": torch.zeros(1, 128), "center2": torch.zeros(1, 1, 128)},
    }
    return save(obj, tmp / "checkpoint.pth")


def test_ibot_teacher_file_with_mean_pooling_and_layer_scale(tmp_path):
    ref = timm_vit(192, 3, 2, 16, 32, seed=37, global_pool="avg", init_values=0.1)
    backbone = backbones.load(ibot_teacher_file(ref, tmp_path))
    assert (backbone.format, backbone.arch) == ("ibot", "vit_tiny_patch16")
    assert backbone.arch_kwargs == {"img_size": 32, "depth": 2, "global_pool": "avg", "layer_scale": True}
    x = inputs(32)
    assert_features(backbone, timm_vit_features(ref, x, mean_pool=True), x)


def test_ibot_full_checkpoint_uses_the_teacher_and_proves_six_heads(small6_ref, tmp_path):
    path = ibot_full(small6_ref, tmp_path)
    backbone = backbones.load(path)
    assert (backbone.format, backbone.arch, backbone.arch_kwargs) == (
        "ibot",
        "vit_small_patch16",
        {"img_size": 32, "depth": 2},
    )
    x = inputs(32)
    assert_features(backbone, timm_vit_features(small6_ref, x, mean_pool=False), x)
    report = backbones.inspect(path)
    assert report.weights_at == "teacher" and report.dropped_summary == ["head.* (4)"]
    assert {"student", "ibot_loss", "args"} <= set(report.ignored_entries)


# ------------------------------------------------------------------------- ViT-S files without a family


def moco_v3_convert_to_deit(ref, tmp):
    return save({"model": state(ref)}, tmp / "vit-s-300ep-deit.pth")


def ibot_vit_small_teacher(ref, tmp):
    return save({"state_dict": state(ref)}, tmp / "checkpoint_teacher.pth")


@pytest.mark.parametrize("write, format", [(moco_v3_convert_to_deit, "mae"), (ibot_vit_small_teacher, "ibot")])
def test_vit_small_without_proof_of_its_family_needs_arch(write, format, small12_ref, tmp_path):
    """MoCo v3's 12-head ViT-S saved without its prefixes never loads silently as a 6-head ViT-S."""
    path = write(small12_ref, tmp_path)
    report = backbones.inspect(path)
    assert report.format == format and not report.loadable
    assert "vit_small_patch16, vit_small_patch16_mocov3" in report.problems[0]
    with pytest.raises(backbones.ArchitectureError, match="number of attention heads"):
        backbones.load(path)
    twelve = backbones.load(path, arch="vit_small_patch16_mocov3")
    x = inputs(32)
    assert_features(twelve, timm_vit_features(small12_ref, x, mean_pool=False), x)
    six = backbones.load(path, arch="vit_small_patch16")
    assert not torch.allclose(six(x), twelve(x), atol=1e-3)
