"""CLIP image towers from open_clip and OpenAI state dicts: a whole model (``visual.*`` + text) or ``model.visual``.

Accepted: plain state dicts, ``{"state_dict": ...}`` training checkpoints with a DDP ``module.``
prefix, and OpenAI's weights saved from its TorchScript archive (whose ``input_resolution``,
``context_length`` and ``vocab_size`` entries mark them as OpenAI's, hence QuickGELU). The
archives themselves are refused by the reader (loading one runs its code). ViT towers are renamed
to timm's keys (``proj`` becomes the head, transposed, with a zero bias); ModifiedResNet towers keep
CLIP's names. The text tower is dropped.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from ..errors import CheckpointError
from ..preprocessing import CLIP
from .base import UNIQUE, Extraction, FormatSpec, Match
from .keys import find_state_dict, make_meta, strip_common

_OPENAI_MARKS = ("input_resolution", "context_length", "vocab_size")
# CLIP ViT names -> timm names, applied to one dotted part at a time (never as substrings).
_BLOCK_PARTS = {
    "ln_1": "norm1",
    "ln_2": "norm2",
    "in_proj_weight": "qkv.weight",
    "in_proj_bias": "qkv.bias",
    "out_proj": "proj",
    "c_fc": "fc1",
    "c_proj": "fc2",
    "ls_1": "ls1",
    "ls_2": "ls2",
}
_TOP_PARTS = {"conv1": "patch_embed.proj", "ln_pre": "norm_pre", "ln_post": "norm"}
_RESBLOCK = re.compile(r"^transformer\.resblocks\.(\d+)\.(.+)$")
_UNSUPPORTED = {
    "trunk.": "an open_clip tower built on a timm trunk (visual.trunk.*)",
    "attn_pool.": "an attentional-pooler tower (CoCa)",
}


def _tower(sd: dict[str, torch.Tensor]) -> tuple[str, str] | None:
    """``(prefix, kind)`` of the image tower in a CLIP state dict (kind "vit", "resnet" or "other")."""
    for prefix in ("visual.", ""):
        if f"{prefix}class_embedding" in sd and f"{prefix}transformer.resblocks.0.attn.in_proj_weight" in sd:
            return prefix, "vit"
        if f"{prefix}attnpool.c_proj.weight" in sd and f"{prefix}conv1.weight" in sd:
            return prefix, "resnet"
    if any(k.startswith("visual.trunk.") for k in sd) and "text_projection" in sd:
        return "visual.", "other"
    return None


def _found(obj: Any) -> tuple[str, dict[str, torch.Tensor], dict[str, torch.Tensor]] | None:
    found = find_state_dict(obj, "state_dict")
    if found is None:
        return None
    container, sd = found
    return container, sd, strip_common(sd, "module.")


def detect(obj: Any) -> Match | None:
    found = _found(obj)
    if found is None:
        return None
    _, _, sd = found
    tower = _tower(sd)
    if tower is None:
        return None
    prefix, kind = tower
    what = {"vit": "ViT", "resnet": "ModifiedResNet", "other": "non-standard"}[kind]
    where = "a whole CLIP model (visual.* beside the text tower)" if prefix else "a CLIP image tower (model.visual)"
    reasons = [f"{where}, {what} keys"]
    if all(k in sd for k in _OPENAI_MARKS):
        reasons.append("OpenAI's input_resolution/context_length/vocab_size entries")
    return Match(UNIQUE, tuple(reasons))


def _timm_key(key: str) -> str:
    block = _RESBLOCK.match(key)
    if block:
        parts = [_BLOCK_PARTS.get(p, p) for p in block.group(2).split(".")]
        return f"blocks.{block.group(1)}." + ".".join(parts)
    head, _, rest = key.partition(".")
    return ".".join(filter(None, (_TOP_PARTS.get(head, head), rest)))


def _vit_to_timm(tower: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CLIP ViT keys -> timm VisionTransformer keys; unknown keys keep their names (the strict load lists them)."""
    out = {}
    for key, value in tower.items():
        if key == "class_embedding":
            out["cls_token"] = value.reshape(1, 1, -1)
        elif key == "positional_embedding":
            out["pos_embed"] = value.unsqueeze(0)
        elif key == "proj":
            out["head.weight"] = value.t().contiguous()
            out["head.bias"] = torch.zeros(value.shape[1], dtype=value.dtype)
        else:
            out[_timm_key(key)] = value
    return out


def _quickgelu_evidence(obj: Any, sd: dict[str, torch.Tensor]) -> str | None:
    if all(k in sd for k in _OPENAI_MARKS):
        return "OpenAI's weights (input_resolution/context_length/vocab_size present): OpenAI CLIP uses QuickGELU"
    name = obj.get("name") if isinstance(obj, dict) else None
    if isinstance(name, str) and "quickgelu" in name.lower():
        return f"the open_clip run name {name!r} names a -quickgelu model"
    return None


def extract(obj: Any) -> Extraction:
    found = _found(obj)
    tower = _tower(found[2]) if found else None
    if found is None or tower is None:
        raise CheckpointError("not a CLIP checkpoint: no visual.class_embedding / visual.attnpool keys")
    container, raw, sd = found
    prefix, kind = tower
    for part, what in _UNSUPPORTED.items():
        if any(k.startswith(prefix + part) for k in sd):
            raise CheckpointError(f"{what} is not supported; only CLIP ViT and ModifiedResNet towers are")
    module = "module." if all(k.startswith("module.") for k in raw) else ""
    visual = {k.removeprefix(prefix): v for k, v in sd.items() if k.startswith(prefix)}
    dropped = [module + k for k in sd if not k.startswith(prefix)]
    meta = make_meta(container, raw, obj, normalization=CLIP)
    meta.interpolation = "bicubic"
    meta.variant = ("whole model, image tower taken" if prefix else "image tower") + (
        " (ViT)" if kind == "vit" else " (ModifiedResNet)"
    )
    if kind == "vit":
        visual = _vit_to_timm(visual)
        evidence = _quickgelu_evidence(obj, sd)
        if evidence:
            meta.arch_hint = "clip_vit_quickgelu"
            meta.notes.append(evidence)
        else:
            meta.notes.append(
                "CLIP ViT weights do not say whether the model uses GELU (open_clip) or QuickGELU (OpenAI, "
                "open_clip -quickgelu): pass arch=clip_vit or arch=clip_vit_quickgelu"
            )
        meta.notes.append("proj is the timm head (transposed, zero bias): features are CLIP's image embedding")
    return Extraction(visual, dropped, meta)


SPEC = FormatSpec(
    name="clip",
    title="CLIP image tower (open_clip, OpenAI state dicts)",
    detect=detect,
    extract=extract,
    signal=(
        "visual.class_embedding + visual.transformer.resblocks.* (ViT) or visual.attnpool.* (ModifiedResNet), "
        "with or without the visual. prefix, optionally under 'state_dict' with module."
    ),
    prefix="visual. (module.visual. in training checkpoints)",
    drops="the text tower (transformer.*, token_embedding, ln_final, text_projection, logit_scale...)",
    archs="clip_vit / clip_vit_quickgelu (ViT; activation from OpenAI's marks or arch=), clip_resnet",
    normalization="CLIP mean/std, bicubic resize to 224 without crop margin",
)
