"""The digits case: the kind of folder and checkpoint a new user brings to ``probe run``.

600 real handwritten digits (scikit-learn's ``load_digits``, 8×8 grey levels) upscaled to 64 px
RGB, one folder per digit, with binary masks of the strokes; and a ResNet-18 checkpoint in the
MoCo v2 layout (``module.encoder_q.*``, the momentum encoder and the queue beside it), seeded
random weights (seed 1: the run's random-init control uses seed 0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

#: Images per digit folder, the side in pixels, and the stroke threshold of the masks (of 255).
PER_CLASS = 60
SIZE = 64
STROKE = 64


def write_digits(root: str | Path, *, per_class: int = PER_CLASS, size: int = SIZE) -> tuple[Path, Path]:
    """``root/images/<digit>/<digit>_NNN.png`` (RGB) and binary stroke masks ``root/masks/...``: the first
    ``per_class`` digits of each class in scikit-learn's order. Returns (images, masks)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    root = Path(root)
    images, masks = root / "images", root / "masks"
    for digit in range(10):
        (images / str(digit)).mkdir(parents=True, exist_ok=True)
        (masks / str(digit)).mkdir(parents=True, exist_ok=True)
        for j, i in enumerate(np.flatnonzero(digits.target == digit)[:per_class]):
            grey = Image.fromarray((digits.images[i] / 16.0 * 255).astype(np.uint8)).resize(
                (size, size), Image.Resampling.BILINEAR
            )
            pixels, name = np.asarray(grey), f"{digit}/{digit}_{j:03d}.png"
            Image.fromarray(np.stack([pixels] * 3, axis=-1)).save(images / name)
            Image.fromarray(((pixels > STROKE) * 255).astype(np.uint8)).save(masks / name)
    return images, masks


def moco_v2_resnet18(path: str | Path, *, seed: int = 1) -> Path:
    """A seeded random-weight torchvision ResNet-18 saved the way MoCo v2's training script saves it."""
    import torchvision

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        encoder = {k: v for k, v in torchvision.models.resnet18().state_dict().items() if not k.startswith("fc.")}
        mlp = {
            "fc.0.weight": torch.randn(512, 512) * 0.01,
            "fc.0.bias": torch.zeros(512),
            "fc.2.weight": torch.randn(128, 512) * 0.01,
            "fc.2.bias": torch.zeros(128),
        }
        queue = torch.randn(128, 4096)
    state = {f"module.encoder_q.{k}": v for k, v in {**encoder, **mlp}.items()}
    state.update({f"module.encoder_k.{k}": v.clone() for k, v in {**encoder, **mlp}.items()})
    state.update({"module.queue": queue, "module.queue_ptr": torch.zeros(1, dtype=torch.long)})
    torch.save({"epoch": 200, "arch": "resnet18", "state_dict": state}, path)
    return Path(path)
