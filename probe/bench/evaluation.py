"""Speed of the evaluate stage, batched vs one image at a time, measured side by side.

The evaluate stage of ``probe run`` is dominated by the perturbation test (19 forward passes
per image and method: the clean image, then 9 positive and 9 negative steps); the
localisation metrics are vectorised tensor code. Run: ``probe bench evaluation [--quick]``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torchvision

from backbones.preprocessing import IMAGENET, RAW
from probe.evaluation import evaluate_maps, perturbation_hits


def _seconds(fn: Callable[[], object], repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _localisation_per_image(maps: torch.Tensor, masks: torch.Tensor, model, images, target) -> None:
    for i in range(maps.shape[0]):
        evaluate_maps(
            model,
            images[i : i + 1],
            maps[i : i + 1],
            target[i : i + 1],
            normalization=RAW,
            masks=masks[i : i + 1],
            fractions=(0.0, 0.9),
            batch_size=1,
        )


def run(*, quick: bool = False, images: int | None = None, batch_size: int = 16, threads: int | None = None) -> dict:
    """Batched against per-image perturbation and localisation on random maps; print the ratios.
    ``quick``: resnet18 at 112 px on 4 images (default: resnet50 at 224 px on 32)."""
    if threads:
        torch.set_num_threads(threads)
    arch, size, n = ("resnet18", 112, 4) if quick else ("resnet50", 224, 32)
    n = images or n
    torch.manual_seed(0)
    model = torchvision.models.get_model(arch, weights=None, num_classes=10).eval()
    g = torch.Generator().manual_seed(0)
    pixels = torch.randn(n, 3, size, size, generator=g)
    maps = torch.randn(n, size, size, generator=g)
    masks = torch.rand(n, size, size, generator=g) > 0.7
    with torch.no_grad():
        target = model(pixels).argmax(dim=1)

    batched = _seconds(
        lambda: perturbation_hits(model, pixels, maps, target, normalization=IMAGENET, batch_size=batch_size)
    )
    single = _seconds(lambda: perturbation_hits(model, pixels, maps, target, normalization=IMAGENET, batch_size=1))
    cheap = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(2))  # localisation cost only
    cheap(pixels[:1])
    loc_batched = _seconds(
        lambda: evaluate_maps(
            cheap,
            pixels,
            maps,
            target.clamp(max=1),
            normalization=RAW,
            masks=masks,
            fractions=(0.0, 0.9),
            batch_size=batch_size,
        ),
        repeat=3,
    )
    loc_single = _seconds(lambda: _localisation_per_image(maps, masks, cheap, pixels, target.clamp(max=1)), repeat=3)
    per_image = batched / n
    result = {
        "arch": arch,
        "image_size": size,
        "images": n,
        "batch_size": batch_size,
        "threads": torch.get_num_threads(),
        "perturbation_batched_s": batched,
        "perturbation_single_s": single,
        "perturbation_speedup": single / batched,
        "perturbation_images_per_s": n / batched,
        "localisation_batched_s": loc_batched,
        "localisation_single_s": loc_single,
        "localisation_speedup": loc_single / loc_batched,
        "projected_2000_images_one_method_s": per_image * 2000,
    }
    print(f"evaluate stage, {arch} at {size} px, {n} images, {torch.get_num_threads()} threads, CPU")
    print(
        f"  perturbation (19 forwards/image): batch {batch_size} {batched:.2f} s ({n / batched:.2f} img/s), "
        f"batch 1 {single:.2f} s -> batching x{single / batched:.2f}"
    )
    print(
        f"  localisation metrics: batched {loc_batched * 1000:.1f} ms, per image {loc_single * 1000:.1f} ms "
        f"-> batching x{loc_single / loc_batched:.2f}"
    )
    print(f"  projected perturbation time for 2,000 images, one method, one backbone: {per_image * 2000 / 60:.1f} min")
    return result
