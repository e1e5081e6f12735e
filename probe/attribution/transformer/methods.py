"""The four ViT maps: transformer attribution (Chefer, Gur & Wolf, CVPR 2021), generic attention
(ICCV 2021), attention rollout (Abnar & Zuidema) and the last block's raw attention.

Each reads the classifier's token weights w (the class token, or the mean of the patch tokens) through a
product of per-block token-mixing matrices, w M_{L-1} ... M_s, computed as vector-matrix products from
the top, and keeps the patch columns: a raw map per image on the patch grid, bilinearly upsampled to
the input size (align_corners=False), as the published notebooks do. Specification: docs/ATTRIBUTION.md.
"""

from __future__ import annotations

from collections.abc import Callable
from numbers import Integral
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from probe.errors import ProbeTypeError, ProbeValueError

from ..method import Method, MethodCall, ModelFacts, Option
from .lrp_rules import check_rules
from .recording import Tape, recording
from .relevance import attention_relevance
from .structure import VitStructure, locate

_NEEDS_GRADIENT = ("transformer_attribution", "generic_attention")


def vit_maps(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor | None = None,
    method: str = "transformer_attribution",
    *,
    rank: int = 0,
    **options: Any,
) -> torch.Tensor:
    """Maps [N, H, W] at the input size (float32, on ``images``' device) of ``method`` for class
    ``targets`` [N] (None: each image's ``rank``-th highest class), raw (not normalised)."""
    grid = patch_maps(model, images, targets, method, rank=rank, **options)
    return to_input_size(grid, (images.shape[-2], images.shape[-1])).to(device=images.device, dtype=torch.float32)


def to_input_size(grid: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Patch-grid maps [N, rows, cols] bilinearly upsampled to ``size`` (align_corners=False), as the
    published notebooks show them (they then min-max normalise each map for display)."""
    return F.interpolate(grid[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def patch_maps(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor | None = None,
    method: str = "transformer_attribution",
    *,
    rank: int = 0,
    **options: Any,
) -> torch.Tensor:
    """Maps [N, rows, cols] on the patch grid, in the model's dtype and on its device: the values the
    published functions return, for every image of the batch."""
    spec = _BY_NAME.get(method) if isinstance(method, str) else None
    if spec is None:
        raise ProbeValueError(f"unknown ViT attribution method {method!r}; choose one of {', '.join(VIT_METHODS)}")
    chosen = spec.resolve_options(options)
    return _grid_maps(model, spec.inspect(model).structure, images, targets, method, rank, chosen.get("start_layer", 0))


def _grid_maps(
    model: nn.Module,
    structure: VitStructure,
    images: torch.Tensor,
    targets: torch.Tensor | None,
    method: str,
    rank: int,
    start_layer: object,
) -> torch.Tensor:
    """``patch_maps`` once the ViT is located (and, for transformer attribution, its rules checked)."""
    structure.check_images(images)
    start_layer = _start_layer(start_layer, len(structure.blocks))
    with torch.inference_mode(False):  # autograd works even when the caller is in inference mode
        tape = _record(model, structure, images, method)
        with torch.no_grad():  # the tape's tensors are part of the forward's graph; nothing below is recorded
            targets = _targets(targets, rank, tape.logits)
            row = _token_weights(method, structure, tape, targets, start_layer)
            return _to_grid(structure, row, images.shape[-2:])


def _record(model: nn.Module, structure: VitStructure, images: torch.Tensor, method: str) -> Tape:
    """One forward of the model on our own copy of the images, recorded (with the autograd graph for the
    methods that need gradients: the copy requires grad, so gradients reach every block)."""
    x = _model_input(model, images)
    gradient = method in _NEEDS_GRADIENT
    with recording(model, structure, method == "transformer_attribution") as recorder, torch.set_grad_enabled(gradient):
        return recorder.tape(model(x.requires_grad_(gradient)))


def _token_weights(method: str, structure: VitStructure, tape: Tape, targets: torch.Tensor, start_layer: int):
    """w M_{L-1} ... M_s [B, N]: the classifier's token weights carried down through the blocks."""
    n = tape.blocks[0].attn.shape[-1]
    row = structure.readout(n, tape.logits).expand(tape.logits.shape[0], -1).clone()
    if method == "raw_attention":
        return _mix(row, tape.blocks[-1].attn.detach().clamp(min=0).mean(1))
    if method == "attention_rollout":
        eye = torch.eye(n, dtype=row.dtype, device=row.device)
        for block in reversed(tape.blocks[start_layer:]):
            mixing = block.attn.detach().mean(1) + eye
            row = _mix(row / mixing.sum(-1), mixing)
        return row
    full = method == "transformer_attribution"
    first = start_layer if full else 0
    grads = _attention_gradients(tape, targets, first)
    if full:
        cams = attention_relevance(structure, tape, targets, start_layer)
    else:
        cams = ((i, tape.blocks[i].attn.detach()) for i in range(len(tape.blocks) - 1, -1, -1))
    for index, cam in cams:  # grads are ours, used once: weighted in place
        row = row + _mix(row, grads[index - first].mul_(cam).clamp_(min=0).mean(1))
    return row


def _mix(row: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """row [B, N] times matrix [B, N, N]."""
    return (row[:, None, :] @ matrix)[:, 0]


def _attention_gradients(tape: Tape, targets: torch.Tensor, first: int) -> list[torch.Tensor]:
    """d(target logit)/d(attention probabilities) of blocks ``first``.. (images are independent, so the
    gradient of the sum over the batch is each image's own)."""
    with torch.enable_grad():
        chosen = tape.logits.gather(1, targets[:, None]).sum()
    probs = [block.attn for block in tape.blocks[first:]]
    return list(torch.autograd.grad(chosen, probs))


def _to_grid(structure: VitStructure, row: torch.Tensor, size: torch.Size) -> torch.Tensor:
    rows, cols = structure.grid(int(size[0]), int(size[1]))
    patches = row[:, structure.num_prefix :]
    if patches.shape[1] != rows * cols:
        raise ProbeValueError(
            f"the ViT has {patches.shape[1]} patch tokens, not the {rows}x{cols} grid of a {size[0]}x{size[1]} input"
        )
    return patches.reshape(-1, rows, cols).detach()


def _targets(targets: torch.Tensor | None, rank: int, logits: torch.Tensor) -> torch.Tensor:
    """One class id per image: ``targets`` checked, or each image's ``rank``-th highest class."""
    n, classes = logits.shape
    if targets is None:
        if isinstance(rank, bool) or not isinstance(rank, Integral) or not 0 <= rank < classes:
            raise ProbeValueError(f"rank must be an int in [0, {classes - 1}], got {rank!r}")
        return logits.topk(int(rank) + 1, dim=1).indices[:, rank]
    if not isinstance(targets, torch.Tensor) or targets.dtype.is_floating_point or targets.shape != (n,):
        raise ProbeTypeError(f"targets must be an integer tensor of {n} class ids (one per image)")
    if targets.min() < 0 or targets.max() >= classes:
        raise ProbeValueError(f"targets must be class ids in [0, {classes - 1}]")
    return targets.to(device=logits.device, dtype=torch.long).clone()  # never an inference tensor


def _start_layer_type(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ProbeTypeError(f"start_layer must be an int, got {type(value).__name__}")
    return int(value)


def _start_layer(value: object, depth: int) -> int:
    value = _start_layer_type(value)
    if not 0 <= value < depth:
        raise ProbeValueError(f"start_layer must be in [0, {depth - 1}] (the ViT has {depth} blocks), got {value}")
    return int(value)


def _model_input(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """A copy of ``images`` on the model's device, in its dtype."""
    parameter = next(model.parameters(), None)
    if parameter is None:
        return images.detach().clone()
    return images.detach().to(device=parameter.device, dtype=parameter.dtype, copy=True)


def _facts(method: str) -> Callable[[nn.Module], ModelFacts]:
    """The structural checks of ``method``: one timm ViT with a Linear classifier (and, for transformer
    attribution, an LRP rule for every module on the relevance path); nothing is run."""

    def inspect(model: nn.Module) -> ModelFacts:
        structure = locate(model, method)
        if method == "transformer_attribution":
            check_rules(structure)
        proj = getattr(structure.vit.patch_embed, "proj", None)
        channels = getattr(proj, "in_channels", None)
        where = f"patch embedding '{structure.where('patch_embed.proj')}'"
        return ModelFacts(structure.head.out_features, channels, where, structure)

    return inspect


def _runner(method: str) -> Callable[[MethodCall], torch.Tensor]:
    def run(call: MethodCall) -> torch.Tensor:
        grid = _grid_maps(
            call.model,
            call.facts.structure,
            call.images,
            call.target,
            method,
            call.rank,
            call.options.get("start_layer", 0),
        )
        return to_input_size(grid, (call.images.shape[-2], call.images.shape[-1]))

    return run


def _vit_method(name: str, description: str, *, start_layer: bool = False, class_specific: bool = True) -> Method:
    options = (Option("start_layer", 0, _start_layer_type),) if start_layer else ()
    return Method(
        name,
        _runner(name),
        options=options,
        needs_target=class_specific,
        resolves_rank=True,
        inspect=_facts(name),
        description=description,
    )


TRANSFORMER_ATTRIBUTION = _vit_method(
    "transformer_attribution",
    start_layer=True,
    description="ViTs: LRP relevance of each block's attention times its gradient, rolled out (Chefer et al. 2021)",
)
GENERIC_ATTENTION = _vit_method(
    "generic_attention",
    description="ViTs: gradient-weighted attention, rolled out (Chefer et al., ICCV 2021)",
)
ATTENTION_ROLLOUT = _vit_method(
    "attention_rollout",
    start_layer=True,
    class_specific=False,
    description="ViTs: the product of head-averaged attention plus identity (Abnar & Zuidema); class-independent",
)
RAW_ATTENTION = _vit_method(
    "raw_attention",
    class_specific=False,
    description="ViTs: the last block's head-averaged attention of the pooled token; class-independent",
)
#: The four ViT methods, in the order of the method registry.
VIT_METHOD_SPECS: tuple[Method, ...] = (TRANSFORMER_ATTRIBUTION, GENERIC_ATTENTION, ATTENTION_ROLLOUT, RAW_ATTENTION)
_BY_NAME = {m.name: m for m in VIT_METHOD_SPECS}
#: method -> its keyword options
VIT_METHODS: dict[str, tuple[str, ...]] = {m.name: m.option_names for m in VIT_METHOD_SPECS}
