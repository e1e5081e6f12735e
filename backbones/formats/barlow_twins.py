"""Barlow Twins (facebookresearch/barlowtwins): backbone ``resnet50.pth`` or full ``checkpoint.pth``."""

from __future__ import annotations

from typing import Any

from . import _projector
from .base import Extraction, FormatSpec, Match


def detect(obj: Any) -> Match | None:
    return _projector.detect_full(obj, with_bn=True)


def extract(obj: Any) -> Extraction:
    return _projector.extract(obj, title="Barlow Twins")


SPEC = FormatSpec(
    name="barlow_twins",
    title="Barlow Twins",
    detect=detect,
    extract=extract,
    signal=(
        "'model' with module.backbone., module.projector. and module.bn. (the backbone-only file is a plain state dict)"
    ),
    prefix="module.backbone. (full checkpoint)",
    drops="module.projector.*, module.bn.*",
    archs="resnet50",
)
