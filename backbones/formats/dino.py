"""DINO (facebookresearch/dino): backbone-only releases and full checkpoints (teacher weights).

Full checkpoints hold ``args`` as an argparse.Namespace (allowlisted by the reader). The
teacher's keys are ``backbone.*``/``head.*`` for ViTs and ``module.backbone.*`` for ResNets.
A full checkpoint proves DINO's ViT-S (6 heads); a bare state dict proves nothing about the head
count, so a bare ViT-S needs ``arch=``.
"""

from __future__ import annotations

from typing import Any

from ..errors import CheckpointError
from ..preprocessing import IMAGENET
from .base import STRONG, UNIQUE, Extraction, FormatSpec, Match
from .keys import has_prefix, is_state_dict, looks_like_vit, make_meta, take, teacher_backbone, vit_small_hint


def detect(obj: Any) -> Match | None:
    if isinstance(obj, dict) and is_state_dict(obj.get("teacher")) and "student" in obj and "ibot_loss" not in obj:
        teacher = obj["teacher"]
        kind = "ViT" if any(k.endswith("cls_token") for k in teacher) else "ResNet"
        return Match(
            UNIQUE, ("top-level 'teacher' and 'student' entries (full training checkpoint)", f"{kind} teacher")
        )
    if is_state_dict(obj) and looks_like_vit(obj) and not has_prefix(obj, "head."):
        return Match(STRONG, ("unprefixed timm ViT keys with no classifier head (DINO backbone release layout)",))
    return None


def extract(obj: Any) -> Extraction:
    if isinstance(obj, dict) and is_state_dict(obj.get("teacher")):
        teacher = obj["teacher"]
        kept, dropped = teacher_backbone(teacher)
        meta = make_meta("teacher", teacher, obj, normalization=IMAGENET, variant="full checkpoint (teacher)")
        meta.arch_hint = vit_small_hint(kept)  # DINO's ViT-S has timm's 6 heads
    elif is_state_dict(obj):
        kept, dropped = take(obj, "", head=("head.",))
        meta = make_meta("", obj, obj, normalization=IMAGENET, variant="backbone only")
    else:
        raise CheckpointError("not a DINO checkpoint: neither a 'teacher' entry nor a plain state dict")
    meta.interpolation = "bicubic"
    return Extraction(kept, dropped, meta)


SPEC = FormatSpec(
    name="dino",
    title="DINO (ViT-S/B, ResNet-50)",
    detect=detect,
    extract=extract,
    signal="top-level 'teacher' and 'student'; or unprefixed timm ViT keys without head",
    prefix="teacher: backbone. (ViT) / module.backbone. (ResNet)",
    drops="teacher head.* (DINOHead); student, optimizer, dino_loss, args",
    archs="vit_small_patch16/8 (6 heads; a bare ViT-S needs arch=), vit_base_patch16/8, resnet50",
    normalization="ImageNet mean/std, bicubic resize",
)
