"""``probe run``: checkpoint + image folder -> pseudo-classes -> explanations -> evaluated report."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import backbones
from probe.errors import ParameterError
from probe.report import RunResults
from unsupervised import ImageFolderData

from .images import seeded_subset
from .options import ProbeOptions
from .session import run_session

log = logging.getLogger("probe.pipeline")


def _name(weights: Path) -> str:
    name = weights.name
    for suffix in (".tar", ".pth", ".pt", ".ckpt", ".safetensors", ".torch", ".bin"):
        name = name.removesuffix(suffix)
    return name or weights.name


def run_probe(
    weights: str | os.PathLike,
    *,
    data: str | os.PathLike,
    k: int,
    out: str | os.PathLike,
    masks: str | os.PathLike | None = None,
    format: str | None = None,
    arch: str | None = None,
    max_images: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    **options: Any,
) -> RunResults:
    """The main job: probe the checkpoint ``weights`` on the image folder ``data`` with ``k`` pseudo-classes.

    ``options`` are :class:`ProbeOptions` fields (``method``, ``baselines``, ``eval_images``, ``device``,
    ``batch_size``, ``num_workers``, ``seed``, ``restarts``, ...), with its defaults. Writes
    ``out/report.html``, ``out/metrics.json``, ``out/figures/``, ``out/timings.json``, ``out/run.log``,
    the saved pseudo-classes under ``out/backbones/`` and (unless ``cache_dir``) the feature cache
    under ``out/cache``. Without ``method``/``baselines`` the backbone's kind chooses them (AGF on CNNs,
    transformer attribution on ViTs: ``ProbeOptions.method_defaults``); a given method that cannot explain
    the backbone is refused right after loading it. The checkpoint is compared with a random-init control
    of the same architecture (``backbones.random_like(backbone, seed)``). Same seed, same metrics.json bytes.
    """
    chosen = ProbeOptions(k=k, **options)
    if max_images is not None and max_images < 1:
        raise ParameterError("max_images", f"must be >= 1, got {max_images}")
    with run_session(out, chosen.device) as session:
        log.info(
            "probe run: weights=%s data=%s masks=%s k=%d method=%s baselines=%s seed=%d device=%s",
            weights,
            data,
            masks,
            k,
            chosen.method or "(the backbone's default)",
            "(the backbone's default)" if chosen.baselines is None else ",".join(chosen.baselines),
            chosen.seed,
            chosen.device,
        )
        dataset = seeded_subset(ImageFolderData(data, masks=masks), max_images, chosen.seed)
        backbone = backbones.load(weights, format=format, arch=arch, device=chosen.device)
        sample = f" (seeded sample, max_images {max_images})" if max_images else ""
        header: dict[str, str | int | float] = {
            "checkpoint": str(weights),
            "format": backbone.format,
            "arch": backbone.arch,
            "data": str(dataset.root),
            "masks": str(dataset.masks_root) if dataset.masks_root is not None else "none",
            "images used": f"{len(dataset)}{sample}",
            "evaluated images": f"up to {chosen.eval_per_class} per pseudo-class, {chosen.eval_images} in all",
            "k-means": f"{chosen.restarts} restarts, lowest objective kept",
        }
        return session.probe([(_name(Path(weights)), backbone)], dataset, chosen, settings=header, cache_dir=cache_dir)
