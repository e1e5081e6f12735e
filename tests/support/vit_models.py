"""Tiny timm ViTs with the deterministic weights of tests/data/vit_reference*.npz, and variants
beyond the published code (registers, LayerScale, pre-norm, QuickGELU, average pooling)."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch
import torch.nn as nn
from timm.models.vision_transformer import VisionTransformer

from backbones.backbone import Backbone, Source
from backbones.preprocessing import Preprocessing


def recipe_state_dict(model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Every state-dict tensor, in order, from one ``numpy.random.default_rng(seed)`` stream (the
    fixture's recipe, /work/shared/fixtures/vit-reference/README.md section 4). Tensors that the
    recipe does not name (registers, LayerScale gammas) follow the same pattern: the register tokens
    like the class token, gammas as 0.5·z so that some are negative."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, tensor in model.state_dict().items():
        shape = tuple(tensor.shape)
        z = rng.standard_normal(shape)
        leaf = key.rsplit(".", 1)[-1]
        if key in ("cls_token", "pos_embed", "reg_token"):
            value = 0.02 * z
        elif leaf == "gamma":
            value = 0.5 * z
        elif leaf == "bias":
            value = 0.02 * z
        elif len(shape) == 1:  # LayerNorm weight
            value = 1 + 0.1 * z
        elif len(shape) == 2:  # Linear weight (out, in)
            value = z * math.sqrt(1.0 / shape[1])
        elif len(shape) == 4:  # patch-embedding conv (out, in, kh, kw)
            value = z * math.sqrt(1.0 / (shape[1] * shape[2] * shape[3]))
        else:
            raise AssertionError(f"no recipe for {key} {shape}")
        out[key] = torch.from_numpy(value.astype(np.float32))
    return out


def recipe_vit(
    seed: int = 0,
    depth: int = 4,
    embed_dim: int = 192,
    num_heads: int = 3,
    patch_size: int = 16,
    img_size: int = 224,
    num_classes: int = 10,
    **timm_kwargs,
) -> VisionTransformer:
    """A timm ``VisionTransformer`` of the given size with the recipe weights, in eval mode (float32)."""
    model = VisionTransformer(
        img_size=img_size,
        patch_size=patch_size,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=4.0,
        qkv_bias=True,
        num_classes=num_classes,
        **timm_kwargs,
    )
    model.load_state_dict(recipe_state_dict(model, seed))
    return model.eval()


def weights_sha256(model: nn.Module) -> str:
    """sha256 of the state dict's float32 little-endian bytes, concatenated in state-dict order."""
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().to(torch.float32).numpy().astype("<f4").tobytes())
    return digest.hexdigest()


def as_backbone(model: nn.Module, feature_dim: int, input_size: int, arch: str = "vit_small_patch16") -> Backbone:
    """``model`` wrapped as the pipeline wraps a feature extractor."""
    return Backbone(
        model,
        arch=arch,
        format="test",
        source=Source(None, None, "test"),
        feature_dim=feature_dim,
        preprocessing=Preprocessing(input_size=input_size),
    )
