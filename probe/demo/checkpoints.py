"""The reference backbones shipped with the project, and the manifest that says how each was made."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from probe.errors import ProbeValueError

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
MANIFEST = CHECKPOINT_DIR / "MANIFEST.json"
# recipe (probe.demo.pretrain.RECIPES) -> (file name, checkpoint format as backbones.load names it)
FILES = {
    "simclr": ("simclr_resnet_small.pth", "simclr_v1"),
    "moco": ("moco_v2_resnet_small.pth", "moco"),
    "byol": ("byol_resnet_small.pth", "byol"),
    "supervised": ("supervised_resnet_small.pth", "plain"),
    "supervised_vit": ("supervised_vit_mini_patch8.pth", "plain"),  # DeiT's {"model": ...} layout
}


def sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest() -> dict:
    """The parsed MANIFEST.json ({} if it has not been written yet)."""
    return json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}


def checkpoint_path(method: str) -> Path:
    """Path of the shipped checkpoint of ``method`` (simclr, moco, byol, supervised, supervised_vit)."""
    if method not in FILES:
        raise ProbeValueError(f"no shipped checkpoint for {method!r}; known: {', '.join(FILES)}")
    return CHECKPOINT_DIR / FILES[method][0]
