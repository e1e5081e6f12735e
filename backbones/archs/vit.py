"""timm Vision Transformers (DINO, iBOT, MAE, MoCo v3, DeiT, DINOv2), each built as an unmodified timm model.

A name fixes what the weights cannot show: width, patch size, and above all the number of attention
heads (ViT-S has 6 in timm, DINO, DeiT, iBOT and DINOv2 but 12 in MoCo v3, with identical shapes).
Everything the weights do show is read from them: depth, input size (from the position embeddings),
pooling (class token + final norm, or MAE/iBOT average pooling + ``fc_norm``), LayerScale and
register tokens. A ViT-S whose family is unknown therefore fits two names, and detection asks for
``arch=`` instead of guessing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch.nn as nn

from ..preprocessing import Preprocessing
from ..registry import Detection, register

_BLOCK = re.compile(r"blocks\.(\d+)\.")


@dataclass(frozen=True)
class VitSize:
    """What a ViT name fixes; ``dinov2``: LayerScale always, registers allowed, DINOv2's preprocessing."""

    patch: int
    dim: int
    heads: int
    depth: int
    dinov2: bool = False


def depth_of(shapes: Mapping[str, tuple]) -> int:
    """Number of transformer blocks: one more than the highest ``blocks.{i}.`` index."""
    found = [int(m.group(1)) for key in shapes if (m := _BLOCK.match(key))]
    return max(found) + 1 if found else 0


def grid_side(tokens: int) -> int | None:
    """The side of a square patch grid with ``tokens`` cells, or None."""
    side = math.isqrt(tokens)
    return side if side * side == tokens and side > 0 else None


def vit_kwargs(size: VitSize, shapes: Mapping[str, tuple]) -> dict | None:
    """Constructor arguments that differ from the defaults, read from the shapes; None if they cannot fit ``size``."""
    pos, proj = shapes.get("pos_embed"), shapes.get("patch_embed.proj.weight")
    if pos is None or proj is None or len(pos) != 3 or len(proj) != 4:
        return None
    if (proj[0], proj[-1]) != (size.dim, size.patch) or "cls_token" not in shapes:
        return None
    reg = shapes.get("reg_token")
    reg_tokens = reg[1] if reg is not None and len(reg) == 3 else 0
    if reg_tokens and not size.dinov2:
        return None
    # DINOv2 with registers: the class token carries its position embedding, as in timm's own conversion.
    grid = grid_side(pos[1] - (0 if reg_tokens else 1))
    if grid is None:
        return None
    kwargs: dict = {}
    img_size = grid * size.patch
    if img_size != 224:
        kwargs["img_size"] = img_size
    depth = depth_of(shapes)
    if depth != size.depth:
        kwargs["depth"] = depth
    if "fc_norm.weight" in shapes and "norm.weight" not in shapes:
        kwargs["global_pool"] = "avg"  # MAE fine-tuning and iBOT's mean pooling: mean of patch tokens, then fc_norm
    if "blocks.0.ls1.gamma" in shapes and not size.dinov2:
        kwargs["layer_scale"] = True
    if reg_tokens:
        kwargs["reg_tokens"] = reg_tokens
    return kwargs


def _builder(size: VitSize) -> Callable[..., nn.Module]:
    def build(
        img_size: int = 224,
        depth: int = size.depth,
        global_pool: Literal["token", "avg"] = "token",
        layer_scale: bool = size.dinov2,
        reg_tokens: int = 0,
    ) -> nn.Module:
        import torch
        from timm.models.vision_transformer import VisionTransformer  # timm is slow to import; only ViTs need it

        # On the meta device (shape signatures, loading with assign=True) random initialisation is wasted work.
        init: Literal["skip", ""] = "skip" if torch.get_default_device().type == "meta" else ""
        return VisionTransformer(
            img_size=img_size,
            patch_size=size.patch,
            embed_dim=size.dim,
            depth=depth,
            num_heads=size.heads,
            num_classes=0,
            global_pool=global_pool,
            init_values=1.0 if layer_scale else None,  # the value is replaced by the checkpoint's gammas
            reg_tokens=reg_tokens,
            no_embed_class=reg_tokens > 0,
            weight_init=init,
        )

    return build


_VITS = {
    "vit_mini_patch8": (VitSize(8, 96, 3, 6), "ViT with 8-px patches, 3 heads, 96-d (the demo's small ViT)"),
    "vit_tiny_patch16": (VitSize(16, 192, 3, 12), "ViT-Ti/16, 3 heads (DeiT, iBOT), 192-d"),
    "vit_small_patch16": (VitSize(16, 384, 6, 12), "ViT-S/16, 6 heads (timm, DINO, DeiT, iBOT), 384-d"),
    "vit_small_patch8": (VitSize(8, 384, 6, 12), "ViT-S/8, 6 heads (DINO), 384-d"),
    "vit_small_patch16_mocov3": (VitSize(16, 384, 12, 12), "ViT-S/16 with 12 heads (MoCo v3), 384-d"),
    "vit_base_patch16": (VitSize(16, 768, 12, 12), "ViT-B/16, 12 heads (DINO, MoCo v3, MAE, iBOT), 768-d"),
    "vit_base_patch8": (VitSize(8, 768, 12, 12), "ViT-B/8, 12 heads (DINO), 768-d"),
    "vit_large_patch16": (VitSize(16, 1024, 16, 24), "ViT-L/16, 16 heads (MAE, iBOT), 1024-d"),
    "vit_huge_patch14": (VitSize(14, 1280, 16, 32), "ViT-H/14, 16 heads (MAE), 1280-d"),
    "vit_small_patch14_dinov2": (VitSize(14, 384, 6, 12, dinov2=True), "DINOv2 ViT-S/14, 6 heads, LayerScale, 384-d"),
    "vit_base_patch14_dinov2": (VitSize(14, 768, 12, 12, dinov2=True), "DINOv2 ViT-B/14, 12 heads, LayerScale, 768-d"),
    "vit_large_patch14_dinov2": (
        VitSize(14, 1024, 16, 24, dinov2=True),
        "DINOv2 ViT-L/14, 16 heads, LayerScale, 1024-d",
    ),
}

_READ = "depth, input size, pooling and LayerScale read from the weights"
_READ_DINOV2 = "depth, input size and register tokens read from the weights"
for _name, (_size, _doc) in _VITS.items():
    register(
        _name,
        family="vit",
        preprocessing=Preprocessing(interpolation="bicubic") if _size.dinov2 else None,
        detection=Detection("auto", partial(vit_kwargs, _size)),
        description=f"{_doc}; {_READ_DINOV2 if _size.dinov2 else _READ}",
    )(_builder(_size))
