"""The random-init control of a ViT is a random-init ViT of the same configuration, for every ViT family the
loaders read (DINOv2 with registers and LayerScale, MAE's average pooling, CLIP's pre-norm and QuickGELU), and
the ViT methods explain it."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from timm.layers import LayerScale
from timm.models.vision_transformer import VisionTransformer

import backbones
import probe
from probe.attribution import supports
from tests.backbones.test_vit_layouts import dinov2_layout, mae_finetuned, timm_vit
from tests.support.layouts import save


def dinov2_registers(tmp_path):
    ref = timm_vit(384, 6, 2, 14, 14 * 37, seed=31, init_values=1e-5)
    return save(dinov2_layout(ref, registers=4), tmp_path / "dinov2_vits14_reg4_pretrain.pth")


def mae_average_pool(tmp_path):
    return mae_finetuned(timm_vit(192, 3, 2, 16, 32, seed=34, global_pool="avg"), tmp_path)


def clip_quickgelu(tmp_path):
    open_clip = pytest.importorskip("open_clip")
    torch.manual_seed(42)
    vision = open_clip.model.CLIPVisionCfg(layers=2, width=128, patch_size=16, image_size=32)
    text = open_clip.model.CLIPTextCfg(context_length=8, vocab_size=50, width=64, heads=2, layers=1)
    model = open_clip.model.CLIP(embed_dim=48, vision_cfg=vision, text_cfg=text, quick_gelu=True)
    return save(model.visual.state_dict(), tmp_path / "visual.pt"), "clip_vit_quickgelu"


def _structure(vit: VisionTransformer) -> tuple:
    """What distinguishes the families: prefix tokens, pooling, pre-norm, LayerScale, activation, head."""
    block = vit.blocks[0]
    return (
        vit.num_prefix_tokens,
        vit.global_pool,
        type(vit.norm_pre).__name__,
        type(block.ls1).__name__,
        type(block.mlp.act).__name__,
        type(vit.fc_norm).__name__,
        type(vit.head).__name__,
        tuple(vit.patch_embed.grid_size),
        len(vit.blocks),
    )


@pytest.mark.parametrize(
    "write, expected",
    [
        (dinov2_registers, ("vit_small_patch14_dinov2", (5, "token", "Identity", "LayerScale"))),
        (mae_average_pool, ("vit_tiny_patch16", (1, "avg", "Identity", "Identity"))),
        (clip_quickgelu, ("clip_vit_quickgelu", (1, "token", "LayerNorm", "Identity"))),
    ],
    ids=["dinov2_registers_layer_scale", "mae_average_pool", "clip_pre_norm_quickgelu"],
)
def test_the_control_of_a_vit_is_a_random_vit_of_its_configuration(write, expected, tmp_path):
    written = write(tmp_path)
    path, arch = written if isinstance(written, tuple) else (written, None)
    backbone = backbones.load(path, arch=arch)
    control = backbones.random_like(backbone, seed=0)
    assert (backbone.arch, _structure(backbone.model)[:4]) == expected
    assert (control.arch, control.arch_kwargs, control.format) == (backbone.arch, backbone.arch_kwargs, "random-init")
    assert type(control.model) is type(backbone.model)
    assert _structure(control.model) == _structure(backbone.model)
    if isinstance(backbone.model.blocks[0].ls1, LayerScale):
        assert backbone.model.blocks[0].ls1.gamma.shape == control.model.blocks[0].ls1.gamma.shape
    ours, theirs = backbone.state_dict(), control.state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    assert not torch.equal(ours["model.blocks.0.attn.qkv.weight"], theirs["model.blocks.0.attn.qkv.weight"])
    again = backbones.random_like(backbone, seed=0).state_dict()
    assert all(torch.equal(theirs[k], again[k]) for k in theirs)  # seeded
    size = backbone.input_size
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert control(x).shape == backbone(x).shape == (2, backbone.feature_dim)
    classifier = nn.Sequential(control, nn.Linear(control.feature_dim, 3))
    assert supports(classifier, "transformer_attribution") and not supports(classifier, "agf")
    maps = probe.explain(classifier, x, target=[0, 2], method="transformer_attribution")
    assert maps.shape == (2, size, size) and torch.isfinite(maps).all()
