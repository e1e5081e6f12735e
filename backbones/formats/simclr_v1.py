"""SimCLR v1 converted to PyTorch (tonylins/simclr-converter): ``{"state_dict": torchvision keys + fc}``.

The TF model was trained on RGB in [0, 1] with no mean/std normalisation; 2x/4x widen every
stage including the stem (``resnet50w2``/``resnet50w4``, not torchvision's wide_resnet50_2).
"""

from __future__ import annotations

from typing import Any

from ..preprocessing import RAW
from .base import STRONG, Extraction, FormatSpec, Match
from .keys import looks_like_resnet, make_meta, require_state_dict, take


def detect(obj: Any) -> Match | None:
    if not (isinstance(obj, dict) and set(obj) == {"state_dict"}):
        return None
    sd = obj["state_dict"]
    if not (isinstance(sd, dict) and looks_like_resnet(sd) and "fc.weight" in sd):
        return None
    classes, width = tuple(sd["fc.weight"].shape)
    return Match(
        STRONG,
        (
            "single top-level entry 'state_dict'",
            f"unprefixed torchvision ResNet keys with fc [{classes}, {width}] (converter layout)",
        ),
    )


def extract(obj: Any) -> Extraction:
    container, sd = require_state_dict(obj, "state_dict", what="SimCLR v1")
    kept, dropped = take(sd, "", head=("fc.",))
    meta = make_meta(container, sd, obj, normalization=RAW, variant="converted TF release (supervised fc dropped)")
    meta.notes.append("SimCLR (TF) expects RGB in [0, 1] without mean/std normalisation")
    return Extraction(kept, dropped, meta)


SPEC = FormatSpec(
    name="simclr_v1",
    title="SimCLR v1 (tonylins/simclr-converter)",
    detect=detect,
    extract=extract,
    signal="exactly one top-level entry 'state_dict' holding unprefixed torchvision ResNet keys and fc.*",
    prefix="none",
    drops="fc.* (supervised head; its bias is not even converted)",
    archs="resnet50, resnet50w2, resnet50w4 (every width x k incl. stem)",
    normalization="none: RGB in [0, 1]",
)
