"""A tiny seeded shape world (ImageFolder + label-image masks) and resnet_small checkpoints in the
layouts the demo ships (SimCLR tonylins, MoCo v2, BYOL chigur, plain torchvision), for plumbing tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

import backbones

CATEGORIES = ("circle", "square", "triangle")
SIZE = 64


def _draw(draw: ImageDraw.ImageDraw, category: str, box: tuple[int, int, int, int], fill) -> None:
    x0, y0, x1, y1 = box
    if category == "circle":
        draw.ellipse(box, fill=fill)
    elif category == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=fill)


def make_world(root: Path, per_category: int = 16, two_object: int = 2, seed: int = 0) -> tuple[Path, Path]:
    """``root/images/<category>/<name>.png`` and ``root/masks/...`` label images (0 = background, 1 + category
    index in sorted order) with ``categories.json``; each category folder also holds ``two_object`` images
    with a second, different shape. Returns (images, masks)."""
    rng = np.random.default_rng(seed)
    images, masks = root / "images", root / "masks"
    names = sorted(CATEGORIES)
    for category in names:
        (images / category).mkdir(parents=True, exist_ok=True)
        (masks / category).mkdir(parents=True, exist_ok=True)
        for i in range(per_category + two_object):
            background = tuple(int(v) for v in rng.integers(0, 90, 3))
            image = Image.new("RGB", (SIZE, SIZE), background)
            label = Image.new("L", (SIZE, SIZE), 0)
            objects = [category]
            if i >= per_category:
                objects.append(names[(names.index(category) + 1) % len(names)])
            for j, obj in enumerate(objects):
                side = int(rng.integers(18, 26))
                x0 = int(rng.integers(2, SIZE // 2 - side // 2)) + (SIZE // 2 - 4) * j
                y0 = int(rng.integers(2, SIZE - side - 2))
                box = (x0, y0, min(SIZE - 2, x0 + side), y0 + side)
                colour = tuple(int(v) for v in rng.integers(150, 256, 3))
                _draw(ImageDraw.Draw(image), obj, box, colour)
                _draw(ImageDraw.Draw(label), obj, box, 1 + names.index(obj))
            stem = f"{category}_{i:03d}"
            image.save(images / category / f"{stem}.png")
            label.save(masks / category / f"{stem}.png")
    (masks / "categories.json").write_text(json.dumps({str(1 + i): n for i, n in enumerate(names)}))
    return images, masks


def small_state(seed: int) -> dict[str, torch.Tensor]:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return backbones.create("resnet_small").state_dict()


def _fc(seed: int, classes: int = 10) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"fc.weight": torch.randn(classes, 128, generator=g) * 0.05, "fc.bias": torch.zeros(classes)}


def write_checkpoints(directory: Path, seed: int = 0) -> dict[str, Path]:
    """resnet_small checkpoints (random weights) in the four shipped layouts: {name: path}."""
    directory.mkdir(parents=True, exist_ok=True)
    sd = {name: small_state(seed + i) for i, name in enumerate(("simclr", "moco_v2", "byol", "supervised"))}
    moco = {f"module.encoder_q.{k}": v for k, v in sd["moco_v2"].items()}
    moco.update({f"module.encoder_k.{k}": v.clone() for k, v in sd["moco_v2"].items()})
    g = torch.Generator().manual_seed(seed)
    moco.update({"module.encoder_q.fc.0.weight": torch.randn(128, 128, generator=g), "module.encoder_q.fc.0.bias":
                 torch.zeros(128), "module.encoder_q.fc.2.weight": torch.randn(32, 128, generator=g),
                 "module.encoder_q.fc.2.bias": torch.zeros(32), "module.queue": torch.randn(32, 64, generator=g),
                 "module.queue_ptr": torch.zeros(1, dtype=torch.long)})
    layouts = {
        "simclr": {"state_dict": {**sd["simclr"], **_fc(seed)}},
        "moco_v2": {"state_dict": moco, "epoch": 1, "arch": "resnet_small"},
        "byol": {**{k: v for k, v in sd["byol"].items() if not k.endswith("num_batches_tracked")}, **_fc(seed)},
        "supervised": {**sd["supervised"], **_fc(seed)},
    }
    paths = {}
    for name, obj in layouts.items():
        paths[name] = directory / f"{name}.pth"
        torch.save(obj, paths[name])
    return paths
