"""VICReg (facebookresearch/vicreg): backbone ``resnet50.pth`` or full ``*_fullckpt.pth``.

Full checkpoints store the LARS filter function ``exclude_bias_and_norm`` in the optimizer
state; the reader resolves that one reference to an inert stand-in so the weights can be read.
"""

from __future__ import annotations

from typing import Any

from . import _projector
from .base import Extraction, FormatSpec, Match


def detect(obj: Any) -> Match | None:
    return _projector.detect_full(obj, with_bn=False)


def extract(obj: Any) -> Extraction:
    return _projector.extract(obj, title="VICReg")


SPEC = FormatSpec(
    name="vicreg",
    title="VICReg",
    detect=detect,
    extract=extract,
    signal=(
        "'model' with module.backbone. and module.projector., no module.bn. "
        "(the backbone-only file is a plain state dict)"
    ),
    prefix="module.backbone. (full checkpoint)",
    drops="module.projector.*",
    archs="resnet50, resnet50w2 (x2), resnet200w2",
)
