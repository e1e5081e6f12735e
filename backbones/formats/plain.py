"""Plain torchvision/timm state dicts (also the layout of many backbone-only releases).

Barlow Twins', VICReg's and DINO ResNet-50's backbone files, timm ``model.safetensors`` and DeiT
``{"model": ...}`` files all look like this and load the same way: strip a DDP ``module.`` that
every key carries, drop a classifier (``fc.*`` / ``classifier.6.*`` / ``head.*``), normalise with the
architecture's default statistics. Training checkpoints that also hold an EMA copy (timm's train.py saver:
``state_dict`` and ``state_dict_ema``) load the trained weights, as timm's own loader does by default.
"""

from __future__ import annotations

from typing import Any

from .base import ANY, GENERIC, Extraction, FormatSpec, Match
from .keys import (
    classifier_prefixes,
    find_state_dict,
    layout_name,
    looks_like_resnet,
    make_meta,
    require_state_dict,
    strip_common,
    take,
)

_WRAPPERS = ("state_dict", "model")
_EMA_COPIES = ("state_dict_ema", "model_ema")
_MAX_WRAPPER_DEPTH = 3


def wrapper_prefix(sd) -> str:
    """The dotted prefix that every key carries and that hides ResNet/ViT keys (e.g. ``module.``, ``model.encoder.``).

    ``""`` when the keys are bare, or when no shared prefix reveals a known layout.
    """
    prefix, keys = "", list(sd)
    for _ in range(_MAX_WRAPPER_DEPTH):
        if layout_name(keys):
            return prefix
        firsts = {k.split(".", 1)[0] for k in keys}
        if len(firsts) != 1 or not all("." in k for k in keys):
            break
        head = firsts.pop() + "."
        prefix, keys = prefix + head, [k.removeprefix(head) for k in keys]
    return prefix if layout_name(keys) else ""


def detect(obj: Any) -> Match | None:
    found = find_state_dict(obj, *_WRAPPERS)
    if found is None:
        return None
    container, sd = found
    keys = strip_common(sd, "module.")
    where = f"under {container!r}" if container else "at the top level"
    layout = layout_name(keys)
    if layout is not None:
        return Match(GENERIC, (f"{'timm' if layout == 'ViT' else 'torchvision'} {layout} keys {where}",))
    return Match(ANY, (f"a dict of {len(sd)} tensors {where} (architecture not recognised from key names)",))


def extract(obj: Any) -> Extraction:
    container, sd = require_state_dict(obj, *_WRAPPERS, what="plain")
    prefix = wrapper_prefix(sd)
    kept, dropped = take(sd, prefix, head=classifier_prefixes(strip_common(sd, prefix)))
    meta = make_meta(container, sd, obj)
    if prefix not in ("", "module."):
        meta.caveats.append(
            f"the unknown key prefix {prefix!r} was stripped; normalisation is the architecture's default"
        )
    ema = [name for name in _EMA_COPIES if isinstance(obj, dict) and name in obj and name != container]
    if ema:
        meta.notes.append(f"an EMA copy {ema[0]!r} is also stored; {container!r} (the trained weights) was loaded")
    if looks_like_resnet(kept) and not dropped:
        meta.notes.append(
            "Barlow Twins, VICReg and DINO ResNet-50 backbone files share this layout and load the same way"
        )
    return Extraction(kept, dropped, meta)


SPEC = FormatSpec(
    name="plain",
    title="plain torchvision/timm state dict (timm train.py checkpoints included)",
    detect=detect,
    extract=extract,
    signal=(
        "a state dict (optionally under 'state_dict'/'model', optionally module.-prefixed) of torchvision "
        "ResNet/VGG or timm ViT keys; any other tensor dict needs --arch"
    ),
    prefix="module. if every key has it (forced with --format plain: any shared prefix hiding ResNet/ViT keys)",
    drops="fc.* (ResNet classifier) / classifier.6.* (VGG output layer) / head.* (ViT classifier)",
    archs="every registered architecture, plugins included",
    normalization="the architecture's default (ImageNet mean/std)",
)
