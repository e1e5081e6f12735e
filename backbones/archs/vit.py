"""timm Vision Transformers used by DINO and MoCo v3, returning the final-norm class token.

``img_size`` is read from the checkpoint's position embeddings, so a file trained at another
resolution builds the matching model. ViT-S comes twice: timm/DINO with 6 heads, MoCo v3 with 12;
their weights have identical shapes, so only the format can tell them apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch.nn as nn

from ..registry import Detection, register

AGF_NOTE = "not supported by AGF yet"


def vit_kwargs(shapes: Mapping[str, tuple]) -> dict | None:
    """``img_size`` from the position embeddings [1, 1 + grid**2, D] and the patch size; None if not a ViT."""
    pos, proj = shapes.get("pos_embed"), shapes.get("patch_embed.proj.weight")
    if pos is None or proj is None or len(pos) != 3:
        return None
    grid = math.isqrt(pos[1] - 1)
    if grid * grid != pos[1] - 1:
        return None
    size = grid * proj[-1]
    return {} if size == 224 else {"img_size": size}


def _vit(patch: int, dim: int, heads: int) -> Callable[..., nn.Module]:
    def build(img_size: int = 224) -> nn.Module:
        import torch
        from timm.models.vision_transformer import VisionTransformer  # timm is slow to import; only ViTs need it

        # On the meta device (shape signatures, loading with assign=True) random initialisation is wasted work.
        init = "skip" if torch.get_default_device().type == "meta" else ""
        return VisionTransformer(
            img_size=img_size,
            patch_size=patch,
            embed_dim=dim,
            depth=12,
            num_heads=heads,
            num_classes=0,
            global_pool="token",
            weight_init=init,
        )

    return build


_VITS = {
    "vit_small_patch16": (16, 384, 6, "auto", "ViT-S/16, 6 heads (timm, DINO, DeiT), 384-d"),
    "vit_small_patch8": (8, 384, 6, "auto", "ViT-S/8, 6 heads (DINO), 384-d"),
    "vit_small_patch16_mocov3": (16, 384, 12, "hint", "ViT-S/16 with 12 heads (MoCo v3), 384-d"),
    "vit_base_patch16": (16, 768, 12, "auto", "ViT-B/16, 12 heads (DINO, MoCo v3), 768-d"),
    "vit_base_patch8": (8, 768, 12, "auto", "ViT-B/8, 12 heads (DINO), 768-d"),
}

_HEAD_COUNT_NOTE = (
    "ViT-S weights do not show the head count: 6 assumed (timm, DINO, DeiT); MoCo v3 models need "
    "arch=vit_small_patch16_mocov3 (12 heads)"
)
for _name, (_patch, _dim, _heads, _mode, _doc) in _VITS.items():
    register(
        _name,
        family="vit",
        agf_supported=False,
        detection=Detection(_mode, vit_kwargs, _HEAD_COUNT_NOTE if _dim == 384 and _heads == 6 else ""),
        description=f"{_doc}; {AGF_NOTE}",
    )(_vit(_patch, _dim, _heads))
