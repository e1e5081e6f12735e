"""Feature-extraction benchmark: extract_features against the backbone's bare forward on the same batches.

Bars (issue 5): pipeline throughput (decode + preprocess + forward + write) at least 90%
of the bare forward's on the same, already preprocessed batches (ResNet-50, 224x224
input); a second run with a warm cache at least 20x faster than extraction. Both are
measured side by side in one run.

    python scripts/bench_extraction.py                      # ResNet-50, 128 JPEGs of 500x375, best of 2
    python scripts/bench_extraction.py --quick              # ResNet-18, 24 small images
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn as nn
import torchvision
import torchvision.transforms as T
from PIL import Image

from backbones.preprocessing import IMAGENET

if TYPE_CHECKING:
    from unsupervised import ImageFolderData


class BenchBackbone(nn.Module):
    """A randomly initialised torchvision ResNet with the Backbone attributes extract_features uses."""

    def __init__(self, arch: str, input_size: int, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.model = getattr(torchvision.models, arch)(weights=None)
        self.feature_dim = self.model.fc.in_features
        self.model.fc = nn.Identity()
        self.arch, self.format = arch, "torchvision"
        self.mean, self.std, self.input_size = IMAGENET.mean, IMAGENET.std, input_size
        self.preprocess = T.Compose(
            [
                T.Resize(round(input_size / 0.875)),
                T.CenterCrop(input_size),
                T.ToTensor(),
                T.Normalize(IMAGENET.mean, IMAGENET.std),
            ]
        )
        self.source = SimpleNamespace(
            path=f"<random {arch}>", sha256=hashlib.sha256(f"bench-{arch}-seed-{seed}".encode()).hexdigest()
        )
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def write_images(folder: Path, count: int, size: tuple[int, int], seed: int = 0) -> None:
    """Smooth random photographs-to-be: low-resolution noise upsampled, plus grain, saved as JPEG q90."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        coarse = Image.fromarray(rng.integers(0, 256, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8))
        smooth = np.asarray(coarse.resize(size, Image.Resampling.BICUBIC), dtype=np.int16)
        grain = rng.integers(-12, 13, smooth.shape, dtype=np.int16)
        Image.fromarray(np.clip(smooth + grain, 0, 255).astype(np.uint8)).save(folder / f"{i:05d}.jpg", quality=90)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_forward(backbone: BenchBackbone, data: ImageFolderData, batch_size: int, device: torch.device) -> float:
    """Images/s of the forward alone on the pipeline's batches, preprocessed in memory beforehand."""
    tensors = torch.stack([backbone.preprocess(data.load_image(i)) for i in range(len(data))])
    batches = [tensors[i : i + batch_size] for i in range(0, len(tensors), batch_size)]
    with torch.inference_mode():
        backbone(batches[0].to(device))  # warm-up: kernels chosen, memory allocated
        _sync(device)
        start = time.perf_counter()
        for batch in batches:
            backbone(batch.to(device)).float().cpu()
        _sync(device)
    return len(tensors) / (time.perf_counter() - start)


def pipeline(
    backbone: nn.Module, data, batch_size: int, workers: int, device: torch.device, cache_dir: Path | None = None
) -> float:
    """Seconds of one extract_features call (decode, preprocess, forward, write, finalise).

    ``data`` is a dataset, or a folder to scan first (the scan then counts too).
    """
    from unsupervised import ImageFolderData, extract_features

    start = time.perf_counter()
    data = ImageFolderData(data) if isinstance(data, Path) else data
    extract_features(
        backbone, data, batch_size=batch_size, num_workers=workers, cache_dir=cache_dir, device=device, progress=False
    )
    _sync(device)
    return time.perf_counter() - start


def run(
    *,
    quick: bool = False,
    arch: str | None = None,
    images: int | None = None,
    repeat: int | None = None,
    image_size: str | None = None,
    input_size: int | None = None,
    batch_size: int | None = None,
    workers: str | None = None,
    device: str | None = None,
    threads: int | None = None,
    json_path: str | None = None,
) -> int:
    """``extract_features`` against a bare forward of preprocessed batches, per worker count, and the
    cache's cold and warm times; print the table and the bars. ``quick``: ResNet-18 on 24 small images."""
    from probe.devices import resolve_device
    from unsupervised import ImageFolderData

    arch = arch or ("resnet18" if quick else "resnet50")
    count = images or (24 if quick else 128)
    repeat = repeat or (1 if quick else 2)
    width, height = map(int, (image_size or ("160x120" if quick else "500x375")).split("x"))
    input_size = input_size or (112 if quick else 224)
    batch_size = batch_size or (8 if quick else 32)
    worker_counts = [int(w) for w in (workers or ("0,1" if quick else "0,1,2")).split(",")]
    resolved = resolve_device(device or "auto")
    if threads:
        torch.set_num_threads(threads)

    backbone = BenchBackbone(arch, input_size).to(resolved)
    with tempfile.TemporaryDirectory(prefix="bench-extraction-") as tmp:
        folder = Path(tmp) / "images"
        write_images(folder, count, (width, height))
        start = time.perf_counter()
        data = ImageFolderData(folder)
        scan_s = time.perf_counter() - start
        print(
            f"{arch}, {count} JPEGs {width}x{height} -> {input_size}px, batch {batch_size}, device {resolved}, "
            f"torch threads {torch.get_num_threads()}; folder scan {scan_s:.2f}s",
            flush=True,
        )
        pipeline(backbone, data.subset(range(min(batch_size, count))), batch_size, 0, resolved)  # warm-up
        rates: dict[str, list[float]] = {}
        for _ in range(repeat):  # interleaved, so that a change in machine load hits every row alike
            rates.setdefault("bare", []).append(bare_forward(backbone, data, batch_size, resolved))
            for w in worker_counts:
                rates.setdefault(str(w), []).append(count / pipeline(backbone, data, batch_size, w, resolved))
        bare = max(rates["bare"])
        measured = [
            (f"extract_features, num_workers={w}", max(rates[str(w)]), max(rates[str(w)]) / bare, rates[str(w)])
            for w in worker_counts
        ]
        rows: list[tuple[str, float, float | None, list[float]]] = [
            ("bare forward (preprocessed batches in memory)", bare, None, rates["bare"]),
            *measured,
        ]
        print(f"| run | images/s (best of {repeat}) | share of bare forward | all runs |\n|---|---|---|---|")
        for name, rate, share, runs in rows:
            print(
                f"| {name} | {rate:.1f} | {'100%' if share is None else f'{share:.0%}'} | "
                f"{', '.join(f'{r:.1f}' for r in runs)} |",
                flush=True,
            )
        cache = Path(tmp) / "cache"
        best = max(worker_counts, key=lambda w: max(rates[str(w)]))
        cold = pipeline(backbone, folder, batch_size, best, resolved, cache_dir=cache)
        warm = pipeline(backbone, folder, batch_size, best, resolved, cache_dir=cache)

    best_share = max(r[2] for r in measured)
    speedup = cold / warm
    print(f"cache (folder scan included): cold {cold:.2f}s, warm {warm:.3f}s: {speedup:.0f}x", flush=True)
    verdicts = [
        (best_share >= 0.9, f"best pipeline at {best_share:.0%} of bare forward (bar 90%)"),
        (speedup >= 20, f"warm cache {speedup:.0f}x faster than extraction (bar 20x)"),
    ]
    for ok, text in verdicts:
        print(f"quick run, not the bar: {text}" if quick else f"{'PASS' if ok else 'FAIL'}: {text}")
    if json_path:
        Path(json_path).write_text(
            json.dumps(
                {
                    "arch": arch,
                    "images": count,
                    "image_size": [width, height],
                    "input_size": input_size,
                    "batch_size": batch_size,
                    "device": str(resolved),
                    "torch_threads": torch.get_num_threads(),
                    "rows": [{"run": r[0], "images_per_s": r[1], "share": r[2], "all_runs": r[3]} for r in rows],
                    "cache_cold_s": cold,
                    "cache_warm_s": warm,
                },
                indent=2,
            )
        )
    return 0
