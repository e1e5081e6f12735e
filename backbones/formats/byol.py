"""BYOL converted to PyTorch: chigur/byol-convert raw state dicts, and lucidrains/byol-pytorch learners.

The JAX/Haiku release itself is a dill pickle and is refused before this module sees it.
"""

from __future__ import annotations

from typing import Any

from ..preprocessing import IMAGENET
from .base import STRONG, UNIQUE, Extraction, FormatSpec, Match
from .keys import count_prefix, find_state_dict, is_state_dict, looks_like_resnet, make_meta, require_state_dict, take

_LEARNER = "online_encoder.net."
_LEARNER_PARTS = ("online_encoder.", "online_predictor.", "target_encoder.")


def _learner_prefix(sd) -> str | None:
    if not count_prefix(sd, "online_encoder.projector.") and not count_prefix(sd, "online_predictor."):
        return None
    return "net." if count_prefix(sd, "net.") else _LEARNER if count_prefix(sd, _LEARNER) else None


def detect(obj: Any) -> Match | None:
    found = find_state_dict(obj, "state_dict")
    if found is not None and _learner_prefix(found[1]):
        sd = found[1]
        return Match(
            UNIQUE, (f"BYOL learner keys: {_learner_prefix(sd)!r}, online_encoder.projector / online_predictor",)
        )
    if is_state_dict(obj) and looks_like_resnet(obj) and "fc.weight" in obj:
        if not any(k.endswith("num_batches_tracked") for k in obj):
            return Match(
                STRONG,
                (
                    "raw torchvision ResNet state dict with fc.* and no BatchNorm num_batches_tracked "
                    "(byol-convert layout; old torchvision files look the same and load identically)",
                ),
            )
    return None


def extract(obj: Any) -> Extraction:
    container, sd = require_state_dict(obj, "state_dict", what="BYOL")
    prefix = _learner_prefix(sd)
    if prefix:
        kept, dropped = take(sd, prefix, head=("fc.",), discard=_LEARNER_PARTS)
        variant = "byol-pytorch learner (online network)"
    else:
        kept, dropped = take(sd, "", head=("fc.",))
        variant = "byol-convert (online encoder; pretraining linear classifier fc dropped)"
    return Extraction(kept, dropped, make_meta(container, sd, obj, normalization=IMAGENET, variant=variant))


SPEC = FormatSpec(
    name="byol",
    title="BYOL (PyTorch conversions)",
    detect=detect,
    extract=extract,
    signal="raw torchvision ResNet keys with fc.* and no num_batches_tracked; or net./online_encoder.* learner keys",
    prefix="none (learner: net. or online_encoder.net.)",
    drops="fc.* (online classifier); learner: projector, predictor, target encoder",
    archs="resnet50 (any torchvision-key ResNet)",
)
