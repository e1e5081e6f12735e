"""solo-learn Lightning checkpoints (vturrisi/solo-learn): ``state_dict`` with ``backbone.*`` and method heads.

CIFAR runs replace the stem by a 3x3/stride 1/padding 2 convolution without max-pool
(``resnet18_cifar``/``resnet50_cifar``) and normalise with CIFAR statistics.
"""

from __future__ import annotations

from typing import Any

from ..preprocessing import CIFAR, IMAGENET
from .base import UNIQUE, Extraction, FormatSpec, Match
from .keys import count_prefix, find_state_dict, has_prefix, make_meta, require_state_dict, take

_METHOD_PARTS = (
    "momentum_backbone.",
    "projector.",
    "momentum_projector.",
    "predictor.",
    "classifier.",
    "momentum_classifier.",
)


def _prefix(sd) -> str | None:
    """`backbone.` (current releases) or `encoder.` (older ones)."""
    return next((p for p in ("backbone.", "encoder.") if count_prefix(sd, p)), None)


def _numeric_backbone(sd) -> bool:
    """solo-learn backbones are torchvision/timm modules; numeric `backbone.0.weight` keys are someone else's."""
    return any(k.startswith("backbone.") and k.split(".")[1].isdigit() for k in sd)


def detect(obj: Any) -> Match | None:
    found = find_state_dict(obj, "state_dict")
    if found is None:
        return None
    sd = found[1]
    prefix = _prefix(sd)
    parts = [p.rstrip(".") for p in _METHOD_PARTS if has_prefix(sd, p)]
    if prefix is None or not parts or _numeric_backbone(sd):
        return None
    reasons = [f"{prefix!r} keys with {', '.join(parts)}"]
    if isinstance(obj, dict) and "pytorch-lightning_version" in obj:
        reasons.append(f"Lightning checkpoint (pytorch-lightning {obj['pytorch-lightning_version']})")
    return Match(UNIQUE, tuple(reasons))


def extract(obj: Any) -> Extraction:
    container, sd = require_state_dict(obj, "state_dict", what="solo-learn")
    prefix = _prefix(sd) or "backbone."
    kept, dropped = take(sd, prefix, discard=None)
    conv1 = kept.get("conv1.weight")
    cifar = conv1 is not None and tuple(conv1.shape[-2:]) == (3, 3)
    meta = make_meta(
        container, sd, obj, normalization=CIFAR if cifar else IMAGENET, variant="CIFAR stem" if cifar else None
    )
    if cifar:
        meta.arch_hint = "resnet50_cifar" if "layer1.0.conv3.weight" in kept else "resnet18_cifar"
        meta.notes.append(
            "CIFAR stem (3x3 conv, padding 2, no max-pool) and CIFAR mean/std; STL-10 runs use their own statistics"
        )
    return Extraction(kept, dropped, meta)


SPEC = FormatSpec(
    name="solo_learn",
    title="solo-learn (Lightning)",
    detect=detect,
    extract=extract,
    signal="state_dict with backbone. (or encoder.) plus momentum_backbone./projector./classifier./predictor.",
    prefix="backbone. (older: encoder.)",
    drops="everything outside backbone. (projector, predictor, momentum_*, classifier, queue)",
    archs="resnet18/50, resnet18_cifar/resnet50_cifar, vit_small_patch16, vit_base_patch16",
    normalization="ImageNet mean/std; CIFAR stem: CIFAR mean/std, 32 px",
)
