"""iBOT (bytedance/ibot): the released teacher backbones and full training checkpoints.

``checkpoint_teacher.pth`` is ``{"state_dict": <unprefixed timm ViT keys>}``, written by iBOT's
``extract_backbone_weights.py``; a full ``checkpoint.pth`` holds ``teacher``/``student`` like DINO's
plus ``ibot_loss``, whose teacher backbone is taken. The masked-image-modelling token
(``masked_embed``) and the iBOT head are dropped; LayerScale ``gamma_1``/``gamma_2`` become timm's
``ls1.gamma``/``ls2.gamma``. Only a full checkpoint proves iBOT's 6-head ViT-S; a ViT-S teacher
file needs ``arch=``.
"""

from __future__ import annotations

import re
from typing import Any

from ..preprocessing import IMAGENET
from .base import STRONG, UNIQUE, Extraction, FormatSpec, Match
from .keys import has_prefix, is_state_dict, looks_like_vit, make_meta, take, teacher_backbone, vit_small_hint

_GAMMA = re.compile(r"\.gamma_([12])$")


def _full(obj: Any) -> bool:
    return isinstance(obj, dict) and is_state_dict(obj.get("teacher")) and "ibot_loss" in obj


def _teacher_file(obj: Any) -> bool:
    return isinstance(obj, dict) and set(obj) == {"state_dict"} and is_state_dict(obj["state_dict"])


def detect(obj: Any) -> Match | None:
    if _full(obj):
        return Match(UNIQUE, ("top-level 'teacher', 'student' and 'ibot_loss' (full iBOT checkpoint)",))
    if _teacher_file(obj) and looks_like_vit(obj["state_dict"]):
        heads = " (with head.*)" if has_prefix(obj["state_dict"], "head.") else ""
        return Match(
            STRONG, (f"a lone 'state_dict' of unprefixed timm ViT keys{heads} (iBOT extract_backbone_weights.py)",)
        )
    return None


def extract(obj: Any) -> Extraction:
    if _full(obj):
        sd, container = obj["teacher"], "teacher"
        kept, dropped = teacher_backbone(sd, head=("masked_embed",))
        variant = "full checkpoint (teacher)"
    else:
        sd, container = obj["state_dict"], "state_dict"
        kept, dropped = take(sd, "", head=("head.", "masked_embed"))
        variant = "teacher backbone"
    kept = {_GAMMA.sub(r".ls\1.gamma", k): v for k, v in kept.items()}
    meta = make_meta(container, sd, obj, normalization=IMAGENET, variant=variant)
    meta.interpolation = "bicubic"
    if _full(obj):
        meta.arch_hint = vit_small_hint(kept)  # iBOT's ViT-S has 6 heads
    return Extraction(kept, dropped, meta)


SPEC = FormatSpec(
    name="ibot",
    title="iBOT (ViT-S/B/L)",
    detect=detect,
    extract=extract,
    signal="top-level 'teacher', 'student' and 'ibot_loss'; or a lone 'state_dict' of unprefixed timm ViT keys",
    prefix="teacher: backbone. / module.backbone.",
    drops="head.* (iBOT head), masked_embed; student, optimizer, ibot_loss, args",
    archs="vit_small_patch16 (6 heads; a ViT-S teacher file needs arch=), vit_base_patch16, vit_large_patch16",
    normalization="ImageNet mean/std, bicubic resize",
)
