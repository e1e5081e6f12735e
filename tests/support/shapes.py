"""A tiny seeded shape world (ImageFolder + label-image masks) and resnet_small checkpoints in the
layouts the demo ships (SimCLR tonylins, MoCo v2, BYOL chigur, plain torchvision), plus a tiny ViT in
DINO's backbone-release layout, for plumbing tests; ``run_args`` for a cheap ``probe run`` on them."""

from __future__ import annotations

from pathlib import Path

import torch

import backbones
from probe.bench.pipeline import write_shapes

CATEGORIES = ("circle", "square", "triangle")
SIZE = 64
#: Cheap settings for every pipeline test run: one baseline, 8 evaluated images per pseudo-class.
FAST = ("--baselines", "gradcam", "--eval-images", "24", "--device", "cpu", "--batch-size", "32")


def probe_run(weights: Path, world: tuple[Path, Path], out: Path, *options: str) -> list[str]:
    """``probe run`` arguments for ``weights`` on ``world`` = (images, masks) into ``out``, then ``options``."""
    images, masks = world
    return ["run", "--weights", str(weights), "--data", str(images), "--masks", str(masks), "--out", str(out), *options]


def run_args(weights: Path, world: tuple[Path, Path], out: Path, *extra: str) -> list[str]:
    """:func:`probe_run` with k=3 and :data:`FAST`, then ``extra``."""
    return probe_run(weights, world, out, "--k", "3", *FAST, *extra)


def make_world(root: Path, per_category: int = 16, two_object: int = 2, seed: int = 0) -> tuple[Path, Path]:
    """``root/images/<category>/<category>_NNN.png`` + label masks with ``categories.json``; the last
    ``two_object`` images of each category hold a second, different shape. Returns (images, masks)."""
    return write_shapes(root, {c: per_category for c in CATEGORIES}, size=SIZE, seed=seed, two_object=two_object)


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
    moco.update(
        {
            "module.encoder_q.fc.0.weight": torch.randn(128, 128, generator=g),
            "module.encoder_q.fc.0.bias": torch.zeros(128),
            "module.encoder_q.fc.2.weight": torch.randn(32, 128, generator=g),
            "module.encoder_q.fc.2.bias": torch.zeros(32),
            "module.queue": torch.randn(32, 64, generator=g),
            "module.queue_ptr": torch.zeros(1, dtype=torch.long),
        }
    )
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


def write_vit_checkpoint(path: Path, seed: int = 0, depth: int = 2) -> Path:
    """A seeded random ``vit_mini_patch8`` (64 px: an 8x8 grid of patches, 96-d, 3 heads, ``depth`` blocks) saved
    as DINO releases its backbones: the timm ViT's state dict, unprefixed, without a head."""
    from timm.models.vision_transformer import VisionTransformer

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        vit = VisionTransformer(img_size=SIZE, patch_size=8, embed_dim=96, depth=depth, num_heads=3, num_classes=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(vit.state_dict(), path)
    return path
