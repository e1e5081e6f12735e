"""Batches sized to the GPU: the explanation batch that fits a CUDA device's free memory, measured on a
few images of the run itself (explanations keep every layer's activations: their memory grows with the
model, the image size and the method). On any other device the options stay as given."""

from __future__ import annotations

import logging
from dataclasses import replace

import torch

from probe.devices import batch_for_memory
from unsupervised.distributed import Group

from .explain import explain_maps, predict
from .options import EVAL_ROUND, ProbeOptions
from .prepare import Prepared

log = logging.getLogger("probe.pipeline")

#: Images explained to measure one image's memory.
TRIAL_IMAGES = 2


def explain_bytes_per_image(
    prep: Prepared, images: torch.Tensor, methods: tuple[str, ...], options: ProbeOptions
) -> float:
    """Peak CUDA memory per image of explaining ``images`` with the costliest of ``methods``."""
    device = torch.device(options.device)
    target = predict(prep.model, images, batch=images.shape[0], device=device)
    worst = 0.0
    for method in methods:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        explain_maps(prep, images, target, method, replace(options, explain_batch_size=images.shape[0]))
        torch.cuda.synchronize(device)
        worst = max(worst, (torch.cuda.max_memory_allocated(device) - before) / images.shape[0])
    return worst


def sized_for_device(
    prep: Prepared, images: torch.Tensor, methods: tuple[str, ...], options: ProbeOptions, group: Group
) -> ProbeOptions:
    """``options`` with the explanation batch sized to the free memory of its CUDA device, measured on the
    first :data:`TRIAL_IMAGES` of ``images``; at most one round (:data:`EVAL_ROUND`), so that where the
    evaluation stops does not depend on the GPU. Rank 0's size holds on every rank (the same batch grid).
    Other devices: ``options`` unchanged."""
    if torch.device(options.device).type != "cuda" or images.shape[0] == 0:
        return options
    size = None
    if group.is_main:
        per_image = explain_bytes_per_image(prep, images[:TRIAL_IMAGES], methods, options)
        free, _ = torch.cuda.mem_get_info(torch.device(options.device))
        size = batch_for_memory(free, per_image, most=EVAL_ROUND)
        log.info(
            "%s: explanation batch of %d images (%.0f MiB per image measured, %.1f GiB free on %s)",
            prep.name,
            size,
            per_image / 2**20,
            free / 2**30,
            options.device,
        )
    size = group.broadcast(size)
    return replace(options, explain_batch_size=size)
