"""``explain``: attribution maps for a batch of images, by AGF or a baseline, through one call."""

from __future__ import annotations

from numbers import Integral
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn

from probe.devices import model_device as _model_device
from probe.errors import ProbeTypeError, ProbeValueError

from . import baselines
from .composite import RESIDUAL_EPS, agf_rules, classifier_step, lrp_rules
from .engine import Engine, Observer
from .graph import Graph, trace
from .numerics import max_per_sample

METHODS = ("agf", "gradcam", "integrated_gradients", "saliency", "input_x_gradient", "lrp", "random")

# method -> the keyword options it accepts
OPTIONS: dict[str, tuple[str, ...]] = {
    "agf": ("composite", "residual_eps"),
    "lrp": ("epsilon",),
    "gradcam": ("layer",),
    "integrated_gradients": ("n_steps", "internal_batch_size", "baseline"),
    "saliency": (),
    "input_x_gradient": (),
    "random": ("seed",),
}
_FLOATS = (torch.float32, torch.float64)


def explain(
    model: nn.Module,
    images: torch.Tensor,
    target: int | Sequence[int] | torch.Tensor | None = None,
    method: str = "agf",
    *,
    rank: int | None = None,
    **options: Any,
) -> torch.Tensor:
    """Attribution maps [N, H, W] (float32, on ``images``' device) of ``model``'s class scores.

    ``model``: an unmodified CNN (torchvision/timm ResNets and VGGs, or any module built from
    Conv2d, BatchNorm2d, ReLU, pools, Flatten, Dropout, Identity, Linear and additions) that ends
    in a Linear layer giving the class scores. It is never modified: explain uses inference
    semantics (BatchNorm running statistics, no dropout) even if the model is in training mode,
    and leaves its train/eval flags, parameters, buffers and hooks as they were.
    ``images``: [N, C, H, W] float32/float64, normalised as the model expects.
    ``target``: ``None`` (top-1), a class id, or one class id per image; ``rank=k`` explains each
    image's k-th highest class instead (0 = top-1).
    ``method``: one of :data:`METHODS`. ``"agf"`` returns the raw signed AGF map as the published
    code defines it (divided by its per-image maximum, summed over channels); options:
    ``composite={"layer1.0.conv2": "full"}`` overrides the rule of single convs;
    ``residual_eps`` (default 0.01) stabilises the residual-addition split, 0 is the published rule.
    See docs/ATTRIBUTION.md for every method and option.
    """
    if not isinstance(method, str) or method not in METHODS:
        raise ProbeValueError(f"unknown attribution method {method!r}; choose one of {', '.join(METHODS)}")
    unknown = sorted(set(options) - set(OPTIONS[method]))
    if unknown:
        valid = ", ".join(OPTIONS[method]) or "none"
        raise ProbeTypeError(f"method {method!r} got unknown option(s) {', '.join(unknown)}; its options: {valid}")
    graph = trace(model)
    num_classes = classifier_step(graph).module.out_features
    _check_images(images, graph)
    chosen = _explicit_targets(target, rank, images.shape[0], num_classes)
    device = _model_device(model, images.device)
    x = images.detach().to(device).contiguous()
    chosen = None if chosen is None else chosen.to(device)

    if method in ("agf", "lrp"):
        relevance, chosen = _propagate(graph, x, chosen, rank, method, options)
        maps = _agf_normalise(relevance) if method == "agf" else relevance.sum(1)
    elif method == "random":
        maps = baselines.random_maps(x, seed=options.get("seed", 0))
    else:
        x = x.to(_model_dtype(model, x.dtype))
        with baselines.inference_mode(model):
            if chosen is None:
                with torch.no_grad():
                    chosen = _ranked_targets(model(x), rank or 0)
            maps = baselines.run(method, model, graph, x, chosen, **options)
    return maps.detach().to(device=images.device, dtype=torch.float32)


def input_relevance(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    method: str = "agf",
    observer: Observer | None = None,
    **options: Any,
) -> torch.Tensor:
    """Relevance at the input [N, C, H, W] before the final normalisation, in ``images``' dtype.

    For tests and debugging: ``observer(step, r_out, g_out, r_ins)`` sees every step of the
    reverse sweep (``g_out`` is None where no rule below needs the gradient).
    """
    graph = trace(model)
    x = images.detach().to(_model_device(model, images.device)).contiguous()
    return _propagate(graph, x, targets.to(x.device), None, method, options, observer)[0]


def _residual_eps(options: dict) -> float:
    value = options.get("residual_eps", RESIDUAL_EPS)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ProbeValueError(f"residual_eps must be a number in [0, 1), got {value!r}")
    return float(value)


def _propagate(graph, x, chosen, rank, method, options, observer=None):
    shapes: dict = {}
    if method == "agf":
        rules, start = agf_rules(graph, x.dtype, shapes, options.get("composite"), _residual_eps(options))
    else:
        rules, start = lrp_rules(graph, x.dtype, options.get("epsilon", 1e-6))
    engine = Engine(graph, rules, start, shapes)
    logits = engine.forward(x)
    if chosen is None:
        chosen = _ranked_targets(logits, rank or 0)
    return engine.backward(chosen, observer), chosen


def _agf_normalise(relevance: torch.Tensor) -> torch.Tensor:
    """The published final step, R / max(R) summed over channels. Where the maximum is <= 0 (the
    published division would flip the sign or give inf) we divide by max|R| instead, and leave an
    all-zero map at zero."""
    peak = max_per_sample(relevance)
    magnitude = max_per_sample(relevance.abs())
    scale = torch.where(peak > 0, peak, magnitude)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return (relevance / scale).sum(1)


def _check_images(images: Any, graph: Graph) -> None:
    if not isinstance(images, torch.Tensor):
        raise ProbeTypeError(f"images must be a torch.Tensor [N, C, H, W], got {type(images).__name__}")
    if images.dim() != 4:
        hint = " (a single image? add a batch dimension: images[None])" if images.dim() == 3 else ""
        raise ProbeValueError(f"images must be 4-D [N, C, H, W], got shape {tuple(images.shape)}{hint}")
    if images.dtype not in _FLOATS:
        raise ProbeTypeError(
            f"images must be float32 or float64 (normalised as the model expects), got {images.dtype}"
        )
    if images.shape[0] == 0:
        raise ProbeValueError("images is an empty batch (N = 0); pass at least one image")
    first = [s for s in graph.convs() if s.inputs[0] == graph.input]
    if first and first[0].module.in_channels != images.shape[1]:
        raise ProbeValueError(
            f"images have {images.shape[1]} channels but the model's first conv '{first[0].where}' "
            f"expects {first[0].module.in_channels}"
        )
    if not torch.isfinite(images).all():
        raise ProbeValueError("images contain NaN or infinite values")


def _explicit_targets(target, rank, n: int, num_classes: int) -> torch.Tensor | None:
    """The class of every image when it does not depend on the logits, else None (top-k by ``rank``)."""
    if target is not None and rank is not None:
        raise ProbeValueError("give either target or rank, not both")
    if rank is not None:
        if isinstance(rank, bool) or not isinstance(rank, Integral):
            raise ProbeTypeError(f"rank must be an int, got {type(rank).__name__}")
        if not 0 <= rank < num_classes:
            raise ProbeValueError(f"rank must be in [0, {num_classes - 1}] (the model has {num_classes} classes), got {rank}")
        return None
    if target is None:
        return None
    if isinstance(target, bool):
        raise ProbeTypeError("target must be an int class id or a sequence of them, got a bool")
    if isinstance(target, np.ndarray):
        target = torch.from_numpy(target)
    if isinstance(target, Integral):
        ids = torch.full((n,), int(target), dtype=torch.long)
    elif isinstance(target, torch.Tensor):
        if target.dtype.is_floating_point or target.dtype.is_complex or target.dtype == torch.bool:
            raise ProbeTypeError(f"target tensor must hold integer class ids, got {target.dtype}")
        ids = target.detach().to("cpu", torch.long).reshape(-1)
        if target.dim() == 0:
            ids = ids.expand(n)
    elif isinstance(target, Sequence) and not isinstance(target, (str, bytes)):
        if not all(isinstance(t, Integral) and not isinstance(t, bool) for t in target):
            raise ProbeTypeError("target sequence must hold int class ids")
        ids = torch.tensor([int(t) for t in target], dtype=torch.long)
    else:
        raise ProbeTypeError(f"target must be None, an int, or a sequence/tensor of ints, got {type(target).__name__}")
    if ids.numel() != n:
        raise ProbeValueError(f"target has {ids.numel()} class ids but there are {n} images")
    bad = ids[(ids < 0) | (ids >= num_classes)]
    if bad.numel():
        raise ProbeValueError(f"target class {int(bad[0])} is outside the model's classes [0, {num_classes - 1}]")
    return ids


def _ranked_targets(logits: torch.Tensor, rank: int) -> torch.Tensor:
    return logits.topk(rank + 1, dim=1).indices[:, rank]


def _model_dtype(model: nn.Module, fallback: torch.dtype) -> torch.dtype:
    for tensor in model.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    return fallback


__all__ = ["METHODS", "OPTIONS", "explain", "input_relevance"]
