"""lightly models saved by Lightning or ``torch.save(module.state_dict())``.

Example-style models wrap ``Sequential(*resnet.children()[:-1])`` as ``backbone``, which gives
numeric keys (``backbone.0`` = conv1, ``backbone.4``..``7`` = layer1..4); they are mapped back to
torchvision names from their shapes. Benchmark-style models hold a torchvision ResNet directly.
"""

from __future__ import annotations

from typing import Any

import torch

from ..preprocessing import IMAGENET
from .base import UNIQUE, Extraction, FormatSpec, Match
from .keys import find_state_dict, has_prefix, make_meta, require_state_dict, take
from .solo_learn import LIGHTLY_PARTS, has_numeric_backbone


def detect(obj: Any) -> Match | None:
    found = find_state_dict(obj, "state_dict")
    if found is None or not has_prefix(found[1], "backbone."):
        return None
    sd = found[1]
    parts = [p.rstrip(".") for p in LIGHTLY_PARTS if has_prefix(sd, p)]
    if has_numeric_backbone(sd):
        parts.append("numeric backbone.N children keys")
    if not parts:
        return None
    return Match(UNIQUE, (f"backbone. keys with {', '.join(parts)}",))


def _numeric_names(backbone: dict[str, torch.Tensor]) -> dict[str, str]:
    """Map child indices of a torchvision ResNet's `children()[:-1]` back to attribute names by shape."""
    children: dict[str, list[str]] = {}
    for key in backbone:
        children.setdefault(key.split(".")[0], []).append(key)
    names, layer = {}, 0
    for index in sorted((i for i in children if i.isdigit()), key=int):
        keys = children[index]
        if any(k.endswith(".0.conv1.weight") for k in keys):
            layer += 1
            names[index] = f"layer{layer}"
        elif f"{index}.running_mean" in keys:
            names[index] = "bn1"
        elif f"{index}.weight" in keys and backbone[f"{index}.weight"].dim() == 4:
            names[index] = "conv1"
    return names


def extract(obj: Any) -> Extraction:
    container, sd = require_state_dict(obj, "state_dict", what="lightly")
    kept, dropped = take(sd, "backbone.", discard=None)
    variant = "torchvision backbone"
    if has_numeric_backbone(sd):
        names = _numeric_names(kept)
        renamed = {}
        for key, value in kept.items():
            head, _, rest = key.partition(".")
            renamed[f"{names.get(head, head)}.{rest}" if rest else key] = value
        kept = renamed
        variant = "Sequential(resnet.children()[:-1]) backbone, numeric keys mapped to torchvision names"
    return Extraction(kept, dropped, make_meta(container, sd, obj, normalization=IMAGENET, variant=variant))


SPEC = FormatSpec(
    name="lightly",
    title="lightly (Lightning or state dict)",
    detect=detect,
    extract=extract,
    signal=(
        "backbone. keys with backbone_momentum./projection_head./prediction_head./online_classifier., "
        "or numeric backbone.N keys"
    ),
    prefix="backbone. (numeric children mapped to conv1/bn1/layer1..4)",
    drops="everything outside backbone. (momentum copies, projection/prediction heads, online classifier)",
    archs="torchvision ResNets (resnet18/34/50...), resnet_small",
)
