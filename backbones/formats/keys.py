"""Helpers the format modules share: find the state dict, keep one exact prefix, recognise layouts.

Prefixes are always removed as exact leading strings (``str.removeprefix``), never by
character-set stripping or substring replacement.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeGuard

import torch

from ..errors import CheckpointError
from ..preprocessing import Normalization
from .base import FormatMeta


def is_state_dict(obj: Any) -> TypeGuard[Mapping[str, torch.Tensor]]:
    """A non-empty dict of str -> tensor."""
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) for k in obj)
        and all(isinstance(v, torch.Tensor) for v in obj.values())
    )


def find_state_dict(obj: Any, *wrappers: str) -> tuple[str, dict[str, torch.Tensor]] | None:
    """``("", obj)`` if obj is a state dict, else the first ``(name, obj[name])`` that is one."""
    if is_state_dict(obj):
        return "", dict(obj)
    if isinstance(obj, Mapping):
        for name in wrappers:
            if is_state_dict(obj.get(name)):
                return name, dict(obj[name])
    return None


def require_state_dict(obj: Any, *wrappers: str, what: str) -> tuple[str, dict[str, torch.Tensor]]:
    """Like :func:`find_state_dict`, but a missing state dict is a CheckpointError naming ``what``."""
    found = find_state_dict(obj, *wrappers)
    if found is None:
        where = " or ".join([repr(w) for w in wrappers] + ["the top level"])
        raise CheckpointError(f"no {what} state dict found (looked at {where}); top-level entries: {describe_top(obj)}")
    return found


def has_prefix(keys: Iterable[str], prefix: str) -> bool:
    return any(k.startswith(prefix) for k in keys)


def count_prefix(keys: Iterable[str], prefix: str) -> int:
    return sum(1 for k in keys if k.startswith(prefix))


def take(
    sd: Mapping[str, torch.Tensor],
    prefix: str,
    *,
    head: tuple[str, ...] = (),
    discard: tuple[str, ...] | None = (),
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Split a state dict into backbone keys and dropped keys.

    Keys under ``prefix`` are kept with the prefix removed, unless the remainder starts with
    one of ``head``. Keys starting with one of ``discard`` (every other key if ``discard`` is
    None) are dropped. Any remaining key is kept unchanged, so that the strict load reports it
    instead of it vanishing. Returns (kept, dropped keys in file order).
    """
    kept, dropped = {}, []
    for key, value in sd.items():
        if key.startswith(prefix):
            short = key.removeprefix(prefix)
            if head and short.startswith(head):
                dropped.append(key)
            else:
                kept[short] = value
        elif discard is None or (discard and key.startswith(discard)):
            dropped.append(key)
        else:
            kept[key] = value
    if not any(k.startswith(prefix) for k in sd):
        raise CheckpointError(f"no backbone keys start with {prefix!r}; first keys: {', '.join(list(sd)[:5])}")
    return kept, dropped


def strip_common(sd: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Remove ``prefix`` if *every* key has it (a DDP ``module.``), else return the dict unchanged."""
    if all(k.startswith(prefix) for k in sd):
        return {k.removeprefix(prefix): v for k, v in sd.items()}
    return dict(sd)


def looks_like_resnet(keys: Iterable[str]) -> bool:
    keys = set(keys)
    return "conv1.weight" in keys and any(k.startswith("layer1.0.") for k in keys)


def looks_like_vit(keys: Iterable[str]) -> bool:
    keys = set(keys)
    return "cls_token" in keys and "patch_embed.proj.weight" in keys


def looks_like_vgg(keys: Iterable[str]) -> bool:
    keys = set(keys)
    return "features.0.weight" in keys and "classifier.0.weight" in keys


def layout_name(keys: Iterable[str]) -> str | None:
    """ "ResNet", "ViT" or "VGG" when the key names are torchvision's/timm's for that family, else None."""
    keys = set(keys)
    checks = (("ResNet", looks_like_resnet), ("ViT", looks_like_vit), ("VGG", looks_like_vgg))
    return next((name for name, check in checks if check(keys)), None)


def classifier_prefixes(keys: Iterable[str]) -> tuple[str, ...]:
    """The classifier a torchvision ResNet (``fc.``) or VGG (``classifier.6.``) or timm ViT (``head.``) may carry."""
    prefixes: dict[str | None, tuple[str, ...]] = {"ResNet": ("fc.",), "ViT": ("head.",), "VGG": ("classifier.6.",)}
    return prefixes.get(layout_name(keys), ())


def describe_top(obj: Any) -> str:
    """A one-line description of a checkpoint's top level, for error messages."""
    if is_state_dict(obj):
        return f"a flat dict of {len(obj)} tensors"
    if isinstance(obj, Mapping):
        names = [str(k) for k in list(obj)[:8]]
        more = f" ... ({len(obj)} entries)" if len(obj) > 8 else ""
        return "{" + ", ".join(names) + more + "}"
    return type(obj).__name__


def ignored_entries(obj: Any, *used: str) -> list[str]:
    """Top-level entries of a wrapper dict that the extraction did not use."""
    if not isinstance(obj, Mapping) or is_state_dict(obj):
        return []
    return [str(k) for k in obj if k not in used]


def make_meta(
    container: str, sd: Mapping[str, Any], obj: Any, *, normalization: Normalization | None = None, **kw
) -> FormatMeta:
    """FormatMeta for weights found at ``container`` in ``obj``."""
    used = (container.split(".")[0],) if container else ()
    return FormatMeta(
        container=container,
        container_keys=tuple(sd),
        normalization=normalization,
        ignored=ignored_entries(obj, *used),
        **kw,
    )


def teacher_backbone(
    teacher: Mapping[str, torch.Tensor], *, head: tuple[str, ...] = ()
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The backbone of a DINO-style teacher (``backbone.*``, or ``module.backbone.*`` for DDP ResNets).

    The projection head next to it (``head.*``) is dropped, and so are backbone keys starting with
    one of ``head`` (e.g. iBOT's ``masked_embed``).
    """
    prefix = "module.backbone." if count_prefix(teacher, "module.backbone.") else "backbone."
    return take(teacher, prefix, head=head, discard=(prefix.replace("backbone.", "head."),))


def vit_small_hint(backbone: Mapping[str, torch.Tensor]) -> str | None:
    """``vit_small_patch{p}`` (6 heads) for a ViT-S backbone, for formats whose layout proves a 6-head family."""
    proj = backbone.get("patch_embed.proj.weight")
    if proj is not None and proj.shape[0] == 384 and "cls_token" in backbone:
        return f"vit_small_patch{proj.shape[-1]}"
    return None
