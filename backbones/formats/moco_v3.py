"""MoCo v3 (facebookresearch/moco-v3): pretrain ``module.base_encoder.*`` and main_lincls checkpoints.

MoCo v3's ViT-S has 12 attention heads (timm's has 6): the same weights load into both
without error, so the architecture hint matters.
"""

from __future__ import annotations

from typing import Any

from ..errors import CheckpointError
from ..preprocessing import IMAGENET
from .base import STRONG, UNIQUE, Extraction, FormatSpec, Match
from .keys import count_prefix, find_state_dict, looks_like_vit, make_meta, require_state_dict, strip_common, take

_PREFIXES = ("module.base_encoder.", "base_encoder.")
# The `arch` strings main_moco.py / main_lincls.py write, and our architecture for each.
_ARCHS = {"vit_small": "vit_small_patch16_mocov3", "vit_base": "vit_base_patch16", "resnet50": "resnet50"}


def _prefix(keys) -> str | None:
    return next((p for p in _PREFIXES if count_prefix(keys, p)), None)


def _lincls(obj: Any) -> bool:
    """A ViT main_lincls.py checkpoint: `state_dict` (`module.` + timm keys), `arch` and `best_acc1`.

    ResNet lincls files look like any torchvision training checkpoint and load the same as `plain`.
    """
    return (
        isinstance(obj, dict)
        and "best_acc1" in obj
        and str(obj.get("arch", "")).startswith(("vit_small", "vit_base", "vit_conv"))
        and find_state_dict(obj, "state_dict") is not None
    )


def detect(obj: Any) -> Match | None:
    found = find_state_dict(obj, "state_dict")
    prefix = _prefix(found[1]) if found is not None else None
    if found is not None and prefix:
        sd = found[1]
        reasons = [f"{count_prefix(sd, prefix)} key(s) start with {prefix!r}"]
        for part in ("momentum_encoder.", "predictor."):
            if count_prefix(sd, prefix.replace("base_encoder.", part)):
                reasons.append(f"{part.rstrip('.')} present")
        reasons.append("ViT (cls_token)" if f"{prefix}cls_token" in sd else "ResNet")
        return Match(UNIQUE, tuple(reasons))
    if _lincls(obj):
        return Match(STRONG, (f"main_lincls checkpoint: arch {obj['arch']!r}, best_acc1 and a 'state_dict'",))
    return None


def _arch_hint(obj: Any, backbone_keys) -> str | None:
    arch = obj.get("arch") if isinstance(obj, dict) else None
    if isinstance(arch, str) and arch.startswith("vit_conv"):
        raise CheckpointError(f"MoCo v3 {arch!r} (convolutional stem ViT) has no timm equivalent and is not supported")
    if arch in _ARCHS:
        return _ARCHS[arch]
    return "vit_small_patch16_mocov3" if looks_like_vit(backbone_keys) else None


def extract(obj: Any) -> Extraction:
    container, sd = require_state_dict(obj, "state_dict", what="MoCo v3")
    prefix = _prefix(sd)
    if prefix is not None:
        head = "head." if f"{prefix}cls_token" in sd else "fc."
        other = prefix.removesuffix("base_encoder.")
        kept, dropped = take(sd, prefix, head=(head,), discard=(other + "momentum_encoder.", other + "predictor."))
        variant = "pretrain (base_encoder; momentum encoder and predictor dropped)"
    else:
        plain = strip_common(sd, "module.")
        head = "head." if looks_like_vit(plain) else "fc."
        kept = {k: v for k, v in plain.items() if not k.startswith(head)}
        dropped = [k for k in sd if k.removeprefix("module.").startswith(head)]
        variant = "main_lincls (frozen backbone + trained linear classifier, dropped)"
    meta = make_meta(container, sd, obj, normalization=IMAGENET, variant=variant, arch_hint=_arch_hint(obj, kept))
    if meta.arch_hint == "vit_small_patch16_mocov3":
        meta.notes.append("MoCo v3 ViT-S uses 12 attention heads (not timm's 6)")
    return Extraction(kept, dropped, meta)


SPEC = FormatSpec(
    name="moco_v3",
    title="MoCo v3 (ResNet-50, ViT-S/B)",
    detect=detect,
    extract=extract,
    signal=(
        "keys start with module.base_encoder. (+ momentum_encoder, predictor); "
        "or a ViT main_lincls file (arch vit_*, best_acc1)"
    ),
    prefix="module.base_encoder. / base_encoder. (lincls: module.)",
    drops="base_encoder.fc* (ResNet) or base_encoder.head* (ViT), momentum_encoder.*, predictor.*",
    archs="resnet50, vit_small_patch16_mocov3 (12 heads), vit_base_patch16",
)
