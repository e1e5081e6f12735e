"""DINOv2 (facebookresearch/dinov2) backbone releases, with and without registers, flat or in block chunks.

The released files are bare state dicts of a 518 px model (a 37x37 grid of 14 px patches) with
LayerScale (``ls1.gamma``/``ls2.gamma``) and a ``mask_token`` used only in training (dropped).
DINOv2 resamples its position embeddings at every forward to the input's grid; we do it once, at
load time, for the 224 px input of DINOv2's linear evaluation (a 16x16 grid), so the loaded model
is a plain fixed-size timm VisionTransformer whose forward equals DINOv2's at 224 px:

* without registers DINOv2 passes ``scale_factor = (16 + 0.1) / 37`` to a bicubic resize without
  antialiasing (an old offset against rounding errors, which also shifts the sampling positions;
  no timm option does this), so we do exactly that;
* with registers it asks for the output size with antialiasing, which we do too.

Register models put the class token's position embedding into the class token, as timm's own
conversion does: registers get no position embedding and follow the class token.
"""

from __future__ import annotations

import re
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import CheckpointError
from ..preprocessing import IMAGENET
from .base import UNIQUE, Extraction, FormatSpec, Match
from .keys import is_state_dict, make_meta

EVAL_SIZE = 224  # DINOv2's linear evaluation crop
PLAIN_OFFSET = 0.1  # DINOv2's interpolate_offset for the models without registers
_CHUNKED = re.compile(r"^blocks\.\d+\.(\d+\.)")
_LAYER_SCALE = re.compile(r"^blocks\.(\d+\.)+ls1\.gamma$")


def detect(obj: Any) -> Match | None:
    if not (is_state_dict(obj) and "cls_token" in obj and any(_LAYER_SCALE.match(k) for k in obj)):
        return None
    marks = [k for k in ("mask_token", "register_tokens") if k in obj]
    if not marks:
        return None
    reasons = [f"unprefixed ViT keys with LayerScale (ls1.gamma) and {' and '.join(marks)}"]
    if any(_CHUNKED.match(k) for k in obj):
        reasons.append("blocks stored in chunks (blocks.{chunk}.{i}.)")
    return Match(UNIQUE, tuple(reasons))


def resample_grid(patch_pos: torch.Tensor, side: int, *, offset: float, antialias: bool) -> torch.Tensor:
    """[1, M*M, D] patch position embeddings -> [1, side*side, D], bicubic, as DINOv2 does for a ``side`` grid.

    ``offset`` > 0: DINOv2's scale-factor call ``(side + offset) / M``; 0: the output size is given.
    """
    stored = int(round(patch_pos.shape[1] ** 0.5))
    dim = patch_pos.shape[-1]
    grid = patch_pos.float().reshape(1, stored, stored, dim).permute(0, 3, 1, 2)
    if offset:
        scale = (side + offset) / stored
        out = F.interpolate(grid, scale_factor=(scale, scale), mode="bicubic", antialias=antialias)
    else:
        out = F.interpolate(grid, size=(side, side), mode="bicubic", antialias=antialias)
    if out.shape[-2:] != (side, side):
        raise CheckpointError(f"resampling the position embeddings gave a {tuple(out.shape[-2:])} grid, not {side}")
    return out.permute(0, 2, 3, 1).reshape(1, side * side, dim).to(patch_pos.dtype)


def _unchunk(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``blocks.{chunk}.{i}.x`` -> ``blocks.{i}.x`` (DINOv2 chunks keep the global block index)."""
    return {_CHUNKED.sub(r"blocks.\1", k): v for k, v in sd.items()}


def extract(obj: Any) -> Extraction:
    if not is_state_dict(obj):
        raise CheckpointError("not a DINOv2 backbone: expected a bare state dict")
    sd = _unchunk(dict(obj))
    if any(".mlp.w12." in k for k in sd):
        raise CheckpointError("DINOv2 ViT-g/14 (SwiGLU MLP, mlp.w12/mlp.w3) is not supported yet")
    dropped = [k for k in ("mask_token",) if k in sd]
    sd.pop("mask_token", None)
    registers = sd.pop("register_tokens", None)
    patch = sd["patch_embed.proj.weight"].shape[-1]
    pos = sd["pos_embed"]
    stored = int(round((pos.shape[1] - 1) ** 0.5))
    side = EVAL_SIZE // patch
    offset, antialias = (0.0, True) if registers is not None else (PLAIN_OFFSET, False)
    patches = pos[:, 1:] if stored == side else resample_grid(pos[:, 1:], side, offset=offset, antialias=antialias)
    variant = f"with {registers.shape[1]} registers" if registers is not None else "without registers"
    meta = make_meta("", obj, obj, normalization=IMAGENET, variant=f"backbone ({variant})")
    meta.interpolation = "bicubic"
    if registers is not None:
        sd["reg_token"] = registers
        sd["cls_token"] = sd["cls_token"] + pos[:, :1]
        sd["pos_embed"] = patches
    else:
        sd["pos_embed"] = torch.cat([pos[:, :1], patches], dim=1)
    if stored != side:
        how = (
            "output size, bicubic with antialiasing"
            if registers is not None
            else f"scale factor ({side} + {PLAIN_OFFSET}) / {stored}, bicubic without antialiasing"
        )
        meta.notes.append(
            f"position embeddings resampled once from {stored}x{stored} ({stored * patch} px) to {side}x{side} "
            f"({EVAL_SIZE} px) as DINOv2 does at run time ({how})"
        )
    return Extraction(sd, dropped, meta)


SPEC = FormatSpec(
    name="dinov2",
    title="DINOv2 (ViT-S/B/L/14, with or without registers)",
    detect=detect,
    extract=extract,
    signal="unprefixed ViT keys with LayerScale (ls1.gamma) and mask_token or register_tokens",
    prefix="none (blocks.{chunk}.{i}. flattened to blocks.{i}.)",
    drops="mask_token",
    archs="vit_small/base/large_patch14_dinov2 (registers read from the weights)",
    normalization="ImageNet mean/std, bicubic resize; position embeddings resampled to 224 px as DINOv2 does",
)
