"""MoCo v1/v2 (facebookresearch/moco): ``state_dict`` with ``module.encoder_q.*``, ``encoder_k``, queue."""

from __future__ import annotations

from typing import Any

from ..preprocessing import IMAGENET
from .base import UNIQUE, Extraction, FormatSpec, Match
from .keys import count_prefix, find_state_dict, make_meta, require_state_dict, take

_PREFIXES = ("module.encoder_q.", "encoder_q.")  # DDP-trained, or trained without DDP (moco#84)


def _prefix(keys) -> str | None:
    return next((p for p in _PREFIXES if count_prefix(keys, p)), None)


def detect(obj: Any) -> Match | None:
    found = find_state_dict(obj, "state_dict")
    if found is None:
        return None
    sd = found[1]
    prefix = _prefix(sd)
    if prefix is None:
        return None
    reasons = [f"{count_prefix(sd, prefix)} key(s) start with {prefix!r}"]
    if count_prefix(sd, prefix.replace("encoder_q", "encoder_k")):
        reasons.append("momentum encoder_k present")
    if any(k.endswith("queue") for k in sd):
        reasons.append("queue present")
    reasons.append(_variant(sd, prefix))
    return Match(UNIQUE, tuple(reasons))


def _variant(sd, prefix: str) -> str:
    if f"{prefix}fc.0.weight" in sd and f"{prefix}fc.2.weight" in sd:
        return "v2 (MLP head fc.0/fc.2)"
    if f"{prefix}fc.weight" in sd:
        return "v1 (linear head fc)"
    return "no projection head stored"


def extract(obj: Any) -> Extraction:
    container, sd = require_state_dict(obj, "state_dict", what="MoCo")
    prefix = _prefix(sd) or _PREFIXES[0]
    other = prefix.removesuffix("encoder_q.")
    kept, dropped = take(sd, prefix, head=("fc.",), discard=(other + "encoder_k.", other + "queue"))
    arch = obj.get("arch") if isinstance(obj, dict) and isinstance(obj.get("arch"), str) else None
    meta = make_meta(container, sd, obj, normalization=IMAGENET, variant=_variant(sd, prefix), arch_hint=arch)
    return Extraction(kept, dropped, meta)


SPEC = FormatSpec(
    name="moco",
    title="MoCo v1/v2",
    detect=detect,
    extract=extract,
    signal="keys start with module.encoder_q. (or encoder_q.), usually under 'state_dict'",
    prefix="module.encoder_q. / encoder_q.",
    drops="encoder_q.fc* (v1 linear, v2 fc.0/fc.2 MLP), encoder_k.*, queue, queue_ptr",
    archs="resnet50 (any torchvision-key ResNet, resnet_small)",
)
