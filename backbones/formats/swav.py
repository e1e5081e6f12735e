"""SwAV, DeepCluster-v2 and SeLa-v2 (facebookresearch/swav): ``module.`` + torchvision keys + heads.

There are no ``fc`` keys; the std of the red channel is 0.228 in SwAV's own code.
"""

from __future__ import annotations

from typing import Any

from ..preprocessing import SWAV
from .base import UNIQUE, Extraction, FormatSpec, Match
from .keys import count_prefix, find_state_dict, looks_like_resnet, make_meta, require_state_dict, strip_common, take

_HEADS = ("projection_head.", "prototypes.")


def _module(sd) -> str:
    return "module." if count_prefix(sd, "module.") == len(sd) else ""


def detect(obj: Any) -> Match | None:
    found = find_state_dict(obj, "state_dict")
    if found is None:
        return None
    sd = found[1]
    prefix = _module(sd)
    has_heads = count_prefix(sd, prefix + "prototypes") or count_prefix(sd, prefix + "projection_head.")
    if not (has_heads and looks_like_resnet(strip_common(sd, prefix))):
        return None
    heads = [h.rstrip(".") for h in _HEADS if count_prefix(sd, prefix + h.rstrip("."))]
    return Match(UNIQUE, (f"{prefix or 'unprefixed '}torchvision ResNet keys with {' and '.join(heads)}",))


def extract(obj: Any) -> Extraction:
    container, sd = require_state_dict(obj, "state_dict", what="SwAV")
    prefix = _module(sd)
    kept, dropped = take(sd, prefix, head=("projection_head.", "prototypes"))
    multi = count_prefix(sd, prefix + "prototypes.prototypes")
    variant = f"DeepCluster-v2 ({multi} prototype heads)" if multi else "SwAV / SeLa-v2"
    meta = make_meta(container, sd, obj, normalization=SWAV, variant=variant)
    return Extraction(kept, dropped, meta)


SPEC = FormatSpec(
    name="swav",
    title="SwAV / DeepCluster-v2 / SeLa-v2",
    detect=detect,
    extract=extract,
    signal="module.prototypes* and/or module.projection_head.* next to torchvision ResNet keys",
    prefix="module.",
    drops="projection_head.*, prototypes* (no fc is stored)",
    archs="resnet50, resnet50w2/w4/w5",
    normalization="mean ImageNet, std (0.228, 0.224, 0.225)",
)
