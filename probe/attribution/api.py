"""``explain``: attribution maps for a batch of images, by any registered method, through one call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from probe.devices import model_device
from probe.errors import ProbeError, ProbeTypeError, ProbeValueError

from .inputs import check_images, explicit_targets, model_logits, ranked_targets
from .method import MethodCall
from .registry import get_method


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

    ``model``: a classifier returning class scores [N, classes]; the methods built on our engine
    (``agf``, ``lrp``, ``gradcam``'s default layer) need an unmodified CNN (torchvision/timm
    ResNets and VGGs, or any module built from Conv2d, BatchNorm2d, ReLU, pools, Flatten, Dropout,
    Identity, Linear and additions) that ends in a Linear layer. It is never modified: explain
    uses inference semantics (BatchNorm running statistics, no dropout) even if the model is in
    training mode, and leaves its train/eval flags, parameters, buffers and hooks as they were.
    ``images``: [N, C, H, W] float32/float64, normalised as the model expects.
    ``target``: ``None`` (top-1), a class id, or one class id per image; ``rank=k`` explains each
    image's k-th highest class instead (0 = top-1).
    ``method``: one of :data:`METHODS` (built-in or registered, see :func:`register_method`).
    ``"agf"`` returns the raw signed AGF map as the published code defines it (divided by its
    per-image maximum, summed over channels); options: ``composite={"layer1.0.conv2": "full"}``
    overrides the rule of single convs; ``residual_eps`` (default 0.01) stabilises the
    residual-addition split, 0 is the published rule. See docs/ATTRIBUTION.md for every method and option.
    """
    spec = get_method(method)
    chosen_options = spec.resolve_options(options)
    if not isinstance(model, nn.Module):
        raise ProbeTypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    facts = spec.inspect(model)
    check_images(images, facts)
    n = images.shape[0]
    device = model_device(model, images.device)
    x = images.detach().to(device).contiguous()
    ranking = target is None and spec.needs_target and not spec.resolves_rank
    logits = model_logits(model, x) if ranking else None
    num_classes = facts.num_classes
    if num_classes is None and logits is not None:
        num_classes = logits.shape[1]
    elif num_classes is None and (target is not None or rank is not None):
        num_classes = model_logits(model, x[:1]).shape[1]
    chosen = explicit_targets(target, rank, n, num_classes)
    if logits is not None:
        chosen = ranked_targets(logits, rank or 0)
    elif chosen is not None:
        chosen = chosen.to(device)
    if not spec.needs_target:
        chosen = None
    maps = spec.run(MethodCall(model, x, chosen, rank or 0, chosen_options, facts))
    if not isinstance(maps, torch.Tensor) or tuple(maps.shape) != (n, *images.shape[2:]):
        got = tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__
        raise ProbeValueError(f"method {spec.name!r} returned {got}, expected maps of shape {(n, *images.shape[2:])}")
    return maps.detach().to(device=images.device, dtype=torch.float32)


@dataclass(frozen=True)
class Support:
    """Whether a method can explain a model; ``reason`` says why not. True in a boolean context when it can."""

    method: str
    supported: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.supported


def supports(model: nn.Module, method: str = "agf") -> Support:
    """Whether ``method`` can explain ``model``, from the method's structural checks alone (for
    AGF, LRP and Grad-CAM a quick fx trace; nothing is computed and the model is not called).

    A method without structural requirements (the Captum baselines, ``random``) supports every
    module. ``model`` is the classifier ``explain`` would get: ask about a feature extractor with
    a head, e.g. ``supports(nn.Sequential(backbone, nn.Linear(backbone.feature_dim, 2)))``.
    """
    spec = get_method(method)
    if not isinstance(model, nn.Module):
        raise ProbeTypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    try:
        spec.inspect(model)
    except ProbeError as exc:
        return Support(spec.name, False, str(exc))
    return Support(spec.name, True)


__all__ = ["Support", "explain", "supports"]
