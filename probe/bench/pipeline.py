"""Per-stage times of ``probe run`` (extract, cluster, head, explain, evaluate, report), and the whole
run against its own feature-extraction stage (the ratio the speed targets are stated in).

Cases (``--case``):

- ``shapes`` (default): 2,000 generated 224×224 shape images with label masks, a seeded
  random-weight torchvision ResNet-50 saved as a plain checkpoint, k = 10;
- ``digits``: what a new user brings (:mod:`probe.bench.digits`): 600 handwritten digits at 64 px
  with binary masks, a MoCo v2-layout ResNet-18, k = 10.

Everything else is ``probe run``'s defaults unless given. Everything is written to a temporary
folder; ``--work DIR`` keeps it, and a rerun with the same ``--work`` reuses its images,
checkpoint, feature cache and pseudo-classes (then only explain, evaluate and report are timed
again). Run: ``probe bench pipeline [--case digits] [--quick]`` (quick shapes: resnet_small, 48
images at 64 px, k = 3; quick digits: 8 digits per class).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "diamond", "bar")


def _draw(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], fill) -> None:
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=fill)
    elif shape == "diamond":
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=fill)
    else:
        draw.rectangle((x0, cy - (y1 - y0) // 6, x1, cy + (y1 - y0) // 6), fill=fill)


def write_shapes(
    root: str | Path, per_category: dict[str, int], *, size: int, seed: int, two_object: int = 0
) -> tuple[Path, Path]:
    """A labelled shape world: ``images/<shape>/<shape>_NNN.png`` and label masks ``masks/...``
    (0 = background, 1 + index of the shape in sorted order, named in ``categories.json``).

    Each category holds ``per_category[name]`` one-object images followed by ``two_object`` images
    with a second, different shape on the right half. Returns (images, masks).
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    images, masks = root / "images", root / "masks"
    names = sorted(per_category)
    for category in names:
        (images / category).mkdir(parents=True, exist_ok=True)
        (masks / category).mkdir(parents=True, exist_ok=True)
        for i in range(per_category[category] + two_object):
            image = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 90, 3)))
            label = Image.new("L", (size, size), 0)
            second = names[(names.index(category) + 1) % len(names)]
            objects = [category] if i < per_category[category] else [category, second]
            for j, shape in enumerate(objects):
                side = int(rng.integers(size * 9 // 32, size * 13 // 32))
                x0 = int(rng.integers(2, size // 2 - side // 2)) + (size // 2 - size // 16) * j
                y0 = int(rng.integers(2, size - side - 2))
                box = (x0, y0, min(size - 2, x0 + side), y0 + side)
                _draw(ImageDraw.Draw(image), shape, box, tuple(int(v) for v in rng.integers(150, 256, 3)))
                _draw(ImageDraw.Draw(label), shape, box, 1 + names.index(shape))
            stem = f"{category}_{i:03d}"
            image.save(images / category / f"{stem}.png", compress_level=1)
            label.save(masks / category / f"{stem}.png", compress_level=1)
    (masks / "categories.json").write_text(json.dumps({str(1 + i): n for i, n in enumerate(names)}))
    return images, masks


def _checkpoint(arch: str, path: Path, seed: int) -> Path:
    """A seeded random-weight network saved as a plain state dict (torchvision's layout for its ResNets)."""
    import torchvision

    import backbones

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = backbones.create(arch) if arch == "resnet_small" else torchvision.models.get_model(arch, weights=None)
    torch.save(model.state_dict(), path)
    return path


def _shapes_case(
    folder: Path, *, quick: bool, images: int | None, image_size: int | None, arch: str | None, k: int | None
) -> tuple[Path, Path, Path, int, str]:
    """(images, masks, checkpoint, k, description) of the shapes world, written to ``folder`` unless there."""
    n = images or (48 if quick else 2000)
    size = image_size or (64 if quick else 224)
    arch = arch or ("resnet_small" if quick else "resnet50")
    k = k or (3 if quick else 10)
    data = folder / f"data-{n}-{size}"
    if not (data / "masks" / "categories.json").is_file():  # a kept --work folder keeps its images (and cache)
        shapes = SHAPES[: min(len(SHAPES), k)]
        two = n // (20 * len(shapes))  # 5% two-object images, for the class-specificity test
        per = {s: n // len(shapes) - two + (1 if i < n % len(shapes) else 0) for i, s in enumerate(shapes)}
        write_shapes(data, per, size=size, seed=0, two_object=two)
    weights = folder / f"{arch}.pth"
    if not weights.is_file():
        _checkpoint(arch, weights, seed=1)  # seed 0 would be the random-init control itself
    return data / "images", data / "masks", weights, k, f"{n} shape images at {size} px, {arch} (random weights)"


def _digits_case(folder: Path, *, quick: bool, images: int | None) -> tuple[Path, Path, Path, int, str]:
    """(images, masks, checkpoint, k, description) of the digits case, written to ``folder`` unless there."""
    from .digits import PER_CLASS, moco_v2_resnet18, write_digits

    per_class = max(1, images // 10) if images else (8 if quick else PER_CLASS)
    data = folder / f"digits-{per_class}"
    if not (data / "masks" / "9").is_dir():
        write_digits(data, per_class=per_class)
    weights = folder / "moco_v2_resnet18.pth.tar"
    if not weights.is_file():
        moco_v2_resnet18(weights)
    return (
        data / "images",
        data / "masks",
        weights,
        10,
        f"{10 * per_class} scikit-learn digits at 64 px, MoCo v2-layout ResNet-18 (random weights)",
    )


CASES = ("shapes", "digits")


def run(
    *,
    case: str = "shapes",
    quick: bool = False,
    images: int | None = None,
    image_size: int | None = None,
    arch: str | None = None,
    k: int | None = None,
    eval_images: int | None = None,
    eval_precision: float | None = None,
    baselines: str | None = None,
    batch_size: int | None = None,
    device: str = "cpu",
    threads: int | None = None,
    work: str | None = None,
    json_path: str | None = None,
) -> dict:
    """``probe run`` on one case (:data:`CASES`); print each stage's time and the run's time against its
    feature-extraction stage. Options left out are ``probe run``'s defaults (quick shapes: Grad-CAM only,
    12 evaluated images). ``work`` keeps the case's files and the run output for the next run."""
    if case not in CASES:
        raise ValueError(f"unknown case {case!r}; valid: {', '.join(CASES)}")
    if threads:
        torch.set_num_threads(threads)
    options: dict[str, Any] = {"device": device}
    if quick and case == "shapes":
        options.update(eval_images=12, baselines=("gradcam",))
    for name, value in (("eval_images", eval_images), ("eval_precision", eval_precision), ("batch_size", batch_size)):
        if value is not None:
            options[name] = value
    if baselines is not None:
        options["baselines"] = tuple(b for b in baselines.split(",") if b)

    from probe.pipeline.run import run_probe

    with tempfile.TemporaryDirectory(prefix="probe-bench-pipeline-") as scratch:
        folder = Path(work) if work else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        if case == "digits":
            image_folder, masks, weights, k, what = _digits_case(folder, quick=quick, images=images)
        else:
            image_folder, masks, weights, k, what = _shapes_case(
                folder, quick=quick, images=images, image_size=image_size, arch=arch, k=k
            )
        setup = time.perf_counter() - start
        start = time.perf_counter()
        results = run_probe(weights, data=image_folder, masks=masks, k=k, out=folder / f"run-{case}", **options)
        total = time.perf_counter() - start
    stages = dict(results.timings)
    extract = stages.get("extract")
    out = {
        "case": case,
        "what": what,
        "k": k,
        "options": {key: str(v) for key, v in options.items()},
        "methods": results.settings.get("methods"),
        "threads": torch.get_num_threads(),
        "device": device,
        "setup_s": setup,
        "total_s": total,
        "stages_s": stages,
        "run_over_extract": total / extract if extract else None,
        "verdicts": {name: v.backbone.outcome for name, v in results.verdicts.items()},
    }
    print(
        f"probe run, case {case}: {what}, k={k}, methods {out['methods']}, {torch.get_num_threads()} threads, "
        f"{device} (setup: {setup:.1f} s)"
    )
    for stage, seconds in stages.items():
        print(f"  {stage:<9} {seconds:8.1f} s")
    print(f"  {'total':<9} {total:8.1f} s")
    if extract:
        print(f"  run / extract: {total / extract:.2f}x")
    if json_path:
        Path(json_path).write_text(json.dumps(out, indent=2))
    return out
