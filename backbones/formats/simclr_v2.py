"""SimCLR v2 converted to PyTorch (Separius/SimCLRv2-Pytorch): ``{"resnet": net.* keys, "head": ...}``.

The key names are the converter's own (``net.0`` stem, ``net.{1..4}.blocks.{i}``), loaded into
the matching ``simclr_v2_r{depth}_{w}x_sk{0,1}`` architecture. Input is RGB in [0, 1].
"""

from __future__ import annotations

from typing import Any

from ..preprocessing import RAW
from .base import UNIQUE, Extraction, FormatSpec, Match
from .keys import is_state_dict, make_meta, require_state_dict, take


def detect(obj: Any) -> Match | None:
    if not (isinstance(obj, dict) and is_state_dict(obj.get("resnet"))):
        return None
    sd = obj["resnet"]
    if "net.0.0.weight" not in sd:
        return None
    reasons = ["top-level 'resnet' entry with net.0.* stem keys"]
    if "head" in obj:
        reasons.append("'head' (contrastive projection head) entry present")
    return Match(UNIQUE, tuple(reasons))


def extract(obj: Any) -> Extraction:
    container, sd = require_state_dict(obj, "resnet", what="SimCLR v2 'resnet'")
    kept, dropped = take(sd, "", head=("fc.",))
    sk = "sk1 (selective kernels)" if "net.0.2.weight" in sd else "sk0"
    meta = make_meta(container, sd, obj, normalization=RAW, variant=sk)
    meta.notes.append("SimCLR (TF) expects RGB in [0, 1] without mean/std normalisation")
    return Extraction(kept, dropped, meta)


SPEC = FormatSpec(
    name="simclr_v2",
    title="SimCLR v2 (Separius/SimCLRv2-Pytorch)",
    detect=detect,
    extract=extract,
    signal="top-level 'resnet' (net.0.* stem, net.{1..4}.blocks.*) and 'head' entries",
    prefix="none (converter key names kept)",
    drops="resnet fc.* (supervised head); the 'head' entry (projection head)",
    archs="simclr_v2_r{50,101,152}_{1,2,3}x_sk{0,1}",
    normalization="none: RGB in [0, 1]",
)
