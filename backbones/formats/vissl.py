"""VISSL (facebookresearch/vissl): ``classy_state_dict.base_model.model.trunk`` with ``_feature_blocks.``."""

from __future__ import annotations

from typing import Any

from ..errors import CheckpointError
from ..preprocessing import IMAGENET
from .base import UNIQUE, Extraction, FormatSpec, Match
from .keys import count_prefix, describe_top, find_state_dict, is_state_dict, make_meta, take

_BLOCKS = "_feature_blocks."


def _model(obj: Any) -> tuple[str, dict] | None:
    """(container path, flat state dict with trunk./heads. keys) of a consolidated VISSL checkpoint."""
    if not isinstance(obj, dict):
        return None
    classy = obj.get("classy_state_dict")
    base = classy.get("base_model") if isinstance(classy, dict) else None
    model = base.get("model") if isinstance(base, dict) else None
    if isinstance(model, dict) and is_state_dict(model.get("trunk")):
        flat = {
            f"{part}.{k}": v
            for part in ("trunk", "heads")
            if is_state_dict(model.get(part))
            for k, v in model[part].items()
        }
        return "classy_state_dict.base_model.model", flat
    found = find_state_dict(obj, "model_state_dict")
    if found is not None and (count_prefix(found[1], _BLOCKS) or count_prefix(found[1], "trunk." + _BLOCKS)):
        return found
    return None


def _prefix(sd) -> str:
    return "trunk." + _BLOCKS if count_prefix(sd, "trunk." + _BLOCKS) else _BLOCKS


def detect(obj: Any) -> Match | None:
    found = _model(obj)
    if found is None:
        return None
    where = found[0] or "the top level"
    return Match(UNIQUE, (f"{count_prefix(found[1], _prefix(found[1]))} trunk keys with {_BLOCKS!r} in {where}",))


def extract(obj: Any) -> Extraction:
    found = _model(obj)
    if found is None:
        raise CheckpointError(
            f"not a VISSL checkpoint: no classy_state_dict trunk or {_BLOCKS!r} keys; top level {describe_top(obj)}"
        )
    container, sd = found
    kept, dropped = take(sd, _prefix(sd), discard=None)
    meta = make_meta(container, sd, obj, normalization=IMAGENET)
    if (
        isinstance(obj, dict)
        and isinstance(obj.get("classy_state_dict"), dict)
        and "ema_model" in obj["classy_state_dict"]
    ):
        meta.notes.append("an EMA copy of the model is also stored; the base model was loaded")
    return Extraction(kept, dropped, meta)


SPEC = FormatSpec(
    name="vissl",
    title="VISSL",
    detect=detect,
    extract=extract,
    signal="classy_state_dict (base_model.model.trunk), or _feature_blocks. keys",
    prefix="_feature_blocks. (trunk)",
    drops="heads.*; optimizer, meter and loss state (MoCo queue)",
    archs="torchvision ResNets, resnet50w2/w4/w5",
    normalization="ImageNet mean/std (also for VISSL-trained SimCLR)",
)
