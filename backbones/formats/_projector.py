"""Shared by Barlow Twins and VICReg: ``module.backbone.*`` + ``module.projector.*`` full checkpoints."""

from __future__ import annotations

from typing import Any

from ..preprocessing import IMAGENET
from .base import UNIQUE, Extraction, Match
from .keys import count_prefix, find_state_dict, make_meta, require_state_dict, take

BACKBONE = "module.backbone."
PROJECTOR = "module.projector."
BN = "module.bn."  # Barlow Twins' affine-free BatchNorm on the embeddings


def full_state_dict(obj: Any) -> dict | None:
    found = find_state_dict(obj, "model")
    if found is None or not (count_prefix(found[1], BACKBONE) and count_prefix(found[1], PROJECTOR)):
        return None
    return found[1]


def detect_full(obj: Any, *, with_bn: bool) -> Match | None:
    sd = full_state_dict(obj)
    if sd is None or bool(count_prefix(sd, BN)) != with_bn:
        return None
    reasons = [f"{BACKBONE} and {PROJECTOR} keys (full training checkpoint)"]
    reasons.append(f"{BN} present" if with_bn else f"no {BN}")
    return Match(UNIQUE, tuple(reasons))


def extract(obj: Any, *, title: str) -> Extraction:
    """Full checkpoints: strip module.backbone., drop the projector (and bn). Backbone files pass through."""
    container, sd = require_state_dict(obj, "model", what=title)
    if count_prefix(sd, BACKBONE):
        kept, dropped = take(sd, BACKBONE, discard=(PROJECTOR, BN))
        variant = "full checkpoint"
    else:
        kept, dropped = take(sd, "")
        variant = "backbone only"
    return Extraction(kept, dropped, make_meta(container, sd, obj, normalization=IMAGENET, variant=variant))
