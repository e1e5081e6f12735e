"""MAE (facebookresearch/mae): ``{"model": ...}`` files of pretraining, linear probing and fine-tuning.

The encoder keys are timm's (MAE's ViT subclasses timm's). Pretraining checkpoints also hold the
decoder (``decoder_*``, ``mask_token``), dropped; the released pretrain files hold the encoder only.
Linear-probe checkpoints end in ``head.0`` (BatchNorm1d without affine parameters) and ``head.1``
(the classifier); fine-tuned ones pool the patch tokens into ``fc_norm`` and have no final ``norm``,
which the architecture reads from the keys (``global_pool='avg'``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..preprocessing import IMAGENET
from .base import STRONG, UNIQUE, Extraction, FormatSpec, Match
from .keys import has_prefix, is_state_dict, looks_like_vit, make_meta, require_state_dict, take

_DECODER = ("decoder_", "mask_token")


def _encoder_dict(obj: Any) -> Mapping[str, torch.Tensor] | None:
    sd = obj.get("model") if isinstance(obj, dict) else None
    return sd if is_state_dict(sd) and looks_like_vit(sd) else None


def _linear_probe(sd) -> bool:
    return "head.0.running_mean" in sd and "head.1.weight" in sd


def _global_pool(sd) -> bool:
    return "fc_norm.weight" in sd and "norm.weight" not in sd


def detect(obj: Any) -> Match | None:
    sd = _encoder_dict(obj)
    if sd is None:
        return None
    if any(k.startswith(_DECODER) for k in sd):
        return Match(UNIQUE, ("'model' holds a timm ViT encoder and MAE's decoder (decoder_*, mask_token)",))
    if _linear_probe(sd):
        return Match(UNIQUE, ("'model' holds a timm ViT with MAE's linear-probe head (head.0 BatchNorm, head.1)",))
    if _global_pool(sd):
        return Match(STRONG, ("'model' holds a timm ViT with fc_norm and no final norm (MAE global-pool fine-tuning)",))
    if set(obj) == {"model"} and not has_prefix(sd, "head."):
        return Match(STRONG, ("a lone 'model' entry: a timm ViT encoder without head (MAE release layout)",))
    return None


def extract(obj: Any) -> Extraction:
    container, sd = require_state_dict(obj, "model", what="MAE")
    kept, dropped = take(sd, "", head=("head.", *_DECODER))
    meta = make_meta(container, sd, obj, normalization=IMAGENET)
    meta.interpolation = "bicubic"
    if any(k.startswith(_DECODER) for k in sd):
        meta.variant = "pretraining checkpoint (decoder dropped)"
    elif _linear_probe(sd):
        classes = tuple(sd["head.1.weight"].shape)[0]
        meta.variant = "linear probe (frozen encoder; its BatchNorm + linear classifier dropped)"
        meta.notes.append(
            f"the file's {classes}-class probe (BatchNorm1d without affine + Linear) is dropped: ssl-probe trains "
            "its own head. Folded, it is one Linear on these features: W / sqrt(var + eps) and b - W mean / "
            "sqrt(var + eps), with the BatchNorm's running mean and var (docs/BACKBONES.md)"
        )
    elif _global_pool(sd):
        meta.variant = "fine-tuned, global average pooling + fc_norm (classifier dropped)"
    else:
        meta.variant = "pretrained encoder"
        meta.notes.append("MoCo v3's convert_to_deit.py writes the same layout ({'model': encoder})")
    return Extraction(kept, dropped, meta)


SPEC = FormatSpec(
    name="mae",
    title="MAE (ViT-B/L/H)",
    detect=detect,
    extract=extract,
    signal=(
        "'model' with timm ViT keys and decoder_*/mask_token, or head.0 BatchNorm + head.1 (linear probe), "
        "or fc_norm without norm (fine-tuned), or as the file's only entry"
    ),
    prefix="none",
    drops="decoder_*, mask_token; head.* (classifier, or the probe's BatchNorm + Linear)",
    archs="vit_base_patch16, vit_large_patch16, vit_huge_patch14 (class token or global_pool='avg')",
    normalization="ImageNet mean/std, bicubic resize",
)
