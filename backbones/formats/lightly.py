"""lightly models: Lightning ``.ckpt`` files, ``torch.save(module.state_dict())`` and bare backbone trunks.

Which branch is the backbone: ``backbone.`` when the model has one (the online network of lightly's
SimCLR/MoCo/BYOL examples and benchmarks; the teacher of its DINO benchmark; MSN's target), else
``teacher_backbone.`` (models that name both branches ``student_*``/``teacher_*``, as lightly's DINO,
DINOv2, iBOT and CAPI examples do: DINO evaluates the teacher). Everything else (momentum copies,
heads, online classifier, loss buffers such as DINO's ``criterion.center``) is dropped.

Trunks built as ``Sequential(*resnet.children()[:-1])`` have numeric keys. For a torchvision ResNet
(children conv1, bn1, relu, maxpool, layer1..4) they are renamed to torchvision's names; for lightly's
own ``ResNetGenerator`` (children conv1, bn1, layer1..4: no ReLU module) they stay numeric and load into
``lightly_resnet_trunk``. SplitBatchNorm running statistics (``num_splits`` copies) are averaged, as
lightly does when the module switches to eval mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..preprocessing import IMAGENET
from .base import STRONG, UNIQUE, Extraction, FormatSpec, Match
from .keys import find_state_dict, has_prefix, is_state_dict, make_meta, require_state_dict, take

BRANCHES = ("backbone.", "teacher_backbone.")
PARTS = (
    "backbone_momentum.", "projection_head.", "prediction_head.", "projection_head_momentum.", "online_classifier.",
    "student_backbone.", "teacher_backbone.", "student_head.", "teacher_head.", "student_projection_head.",
    "teacher_projection_head.", "key_backbone.", "key_projection_head.", "anchor_backbone.", "criterion.",
)  # fmt: skip
# torchvision ResNet children that hold weights, by index: conv1, bn1, (relu, maxpool), layer1..4.
TORCHVISION_CHILDREN = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}


def _branch(sd: Mapping[str, Any]) -> str | None:
    return next((b for b in BRANCHES if has_prefix(sd, b)), None)


def trunk_kind(sd: Mapping[str, Any]) -> str | None:
    """ "torchvision" / "resnetgenerator" for a numeric ``Sequential(*resnet.children()[:-1])`` trunk, else None."""
    firsts = {k.split(".", 1)[0] for k in sd}
    stem = sd.get("0.weight")
    if not all(f.isdigit() for f in firsts) or stem is None or stem.dim() != 4 or stem.shape[1] != 3:
        return None
    if "1.running_mean" not in sd:
        return None
    if has_prefix(sd, "4.0.") and firsts <= set(TORCHVISION_CHILDREN) and not has_prefix(sd, "2."):
        return "torchvision"
    if has_prefix(sd, "2.0.") and any(".shortcut." in k for k in sd):
        return "resnetgenerator"
    return None


def _generator_module(sd: Mapping[str, Any]) -> bool:
    """lightly's ResNetGenerator module itself: ``conv1``, ``layerN.M.shortcut``, classifier ``linear``."""
    return "conv1.weight" in sd and "linear.weight" in sd and any(".shortcut." in k for k in sd)


def detect(obj: Any) -> Match | None:
    found = find_state_dict(obj, "state_dict")
    if found is None:
        return None
    sd = found[1]
    branch = _branch(sd)
    if branch is not None:
        parts = [p.rstrip(".") for p in PARTS if p != branch and has_prefix(sd, p)]
        inner = {k.removeprefix(branch): v for k, v in sd.items() if k.startswith(branch)}
        if trunk_kind(inner):
            parts.append(f"numeric {branch}N children keys")
        if parts:
            return Match(UNIQUE, (f"{branch} keys with {', '.join(parts)}",))
    if is_state_dict(obj):
        kind = trunk_kind(obj)
        if kind is not None:
            return Match(STRONG, (f"numeric keys of Sequential(*resnet.children()[:-1]) ({kind} ResNet children)",))
        if _generator_module(obj):
            return Match(STRONG, ("lightly ResNetGenerator keys (conv1, layerN.M.shortcut, linear)",))
    return None


def _collapse_split_norms(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
    """Average SplitBatchNorm statistics stored as ``num_splits`` copies; returns the dict and the split count."""
    splits = 0
    for key, value in list(sd.items()):
        if not key.endswith(("running_mean", "running_var")):
            continue
        weight = sd.get(key.rsplit(".", 1)[0] + ".weight")
        if weight is not None and value.dim() == 1 and value.numel() > weight.numel() > 0:
            if value.numel() % weight.numel() == 0:
                splits = value.numel() // weight.numel()
                sd[key] = value.view(splits, weight.numel()).mean(dim=0)
    return sd, splits


def extract(obj: Any) -> Extraction:
    container, sd = require_state_dict(obj, "state_dict", what="lightly")
    branch = _branch(sd)
    if branch is not None:
        kept, dropped = take(sd, branch, discard=None)
        variant = f"branch {branch.rstrip('.')!r}"
    else:
        kept, dropped = take(sd, "", head=("linear.",) if _generator_module(sd) else ())
        variant = "bare backbone state dict"
    if trunk_kind(kept) == "torchvision":
        kept = {_torchvision_name(k): v for k, v in kept.items()}
        variant += "; Sequential(resnet.children()[:-1]) keys renamed to torchvision's"
    kept, splits = _collapse_split_norms(kept)
    meta = make_meta(container, sd, obj, normalization=IMAGENET, variant=variant)
    if branch == "teacher_backbone.":
        meta.notes.append("student/teacher model: the teacher branch was loaded (the one DINO evaluates)")
    if splits:
        meta.notes.append(f"SplitBatchNorm statistics of {splits} splits averaged, as lightly does in eval mode")
    return Extraction(kept, dropped, meta)


def _torchvision_name(key: str) -> str:
    head, _, rest = key.partition(".")
    return f"{TORCHVISION_CHILDREN[head]}.{rest}" if head in TORCHVISION_CHILDREN and rest else key


SPEC = FormatSpec(
    name="lightly",
    title="lightly (Lightning, state dict or bare trunk)",
    detect=detect,
    extract=extract,
    signal=(
        "backbone. (else teacher_backbone.) keys with lightly's heads/momentum/student-teacher parts or numeric "
        "children keys; a bare numeric Sequential(*resnet.children()[:-1]) trunk; a ResNetGenerator state dict"
    ),
    prefix="backbone., else teacher_backbone. (numeric torchvision children renamed to conv1/bn1/layer1..4)",
    drops="everything outside the branch (momentum copies, student, heads, online classifier, criterion buffers)",
    archs="torchvision ResNets, resnet_small, lightly_resnet, lightly_resnet_trunk",
)
