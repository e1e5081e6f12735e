"""The LRP rules of Chefer, Gur & Wolf (CVPR 2021) for the modules of a timm ViT, and the table saying
which module type gets which rule (specification: docs/ATTRIBUTION.md, "Vision Transformers").

``RULES`` maps each place in a block (module path below the block) and module type to a rule; a
module that is not in it stops the relevance pass with an error naming its path and type. The rules
write into a :class:`Workspace`, whose buffers are reused from block to block: a large temporary is
allocated once per call, not once per block (on a CPU, fresh pages cost more than the arithmetic).
Sums that the published rules take over the whole batch are taken per image, so that a batch gives
the maps of its images one by one.
"""

from __future__ import annotations

from functools import cache

import torch
import torch.nn as nn

from ..graph import UnsupportedModelError
from ..numerics import EPS, sdiv
from .structure import VitStructure

IDENTITY = "identity"  # relevance passes unchanged (LayerNorm, GELU, dropout: as the published rules)
Z_PLUS = "z_plus"  # Linear: alpha=1, beta=0, bias ignored
FOLD = "fold_into_linear"  # LayerScale: folded into the Linear before it, diag(gamma)·W
PARTS = "parts"  # a block, attention or MLP: its parts have their own entries


@cache
def block_rules() -> dict[str, dict[type, str]]:
    """Place in a block (module path below the block, "" for the block) -> module type -> rule."""
    from timm.layers import DropPath, LayerScale, Mlp
    from timm.layers import LayerNorm as TimmLayerNorm
    from timm.layers.activations import GELU, GELUTanh, QuickGELU
    from timm.layers.attention import Attention
    from timm.models.vision_transformer import Block

    identity: dict[type, str] = {nn.Identity: IDENTITY}
    dropout: dict[type, str] = {nn.Dropout: IDENTITY, nn.Identity: IDENTITY}
    drop_path: dict[type, str] = {DropPath: IDENTITY, nn.Identity: IDENTITY}
    norm: dict[type, str] = {nn.LayerNorm: IDENTITY, TimmLayerNorm: IDENTITY}
    activation: dict[type, str] = {nn.GELU: IDENTITY, GELU: IDENTITY, GELUTanh: IDENTITY, QuickGELU: IDENTITY}
    scale: dict[type, str] = {nn.Identity: IDENTITY, LayerScale: FOLD}
    linear: dict[type, str] = {nn.Linear: Z_PLUS}
    return {
        "": {Block: PARTS},
        "norm1": norm,
        "attn": {Attention: PARTS},
        "attn.qkv": linear,
        "attn.q_norm": identity,
        "attn.k_norm": identity,
        "attn.attn_drop": dropout,
        "attn.norm": identity,
        "attn.proj": linear,
        "attn.proj_drop": dropout,
        "ls1": scale,
        "drop_path1": drop_path,
        "norm2": norm,
        "mlp": {Mlp: PARTS},
        "mlp.fc1": linear,
        "mlp.act": activation,
        "mlp.drop1": dropout,
        "mlp.norm": identity,
        "mlp.fc2": linear,
        "mlp.drop2": dropout,
        "ls2": scale,
        "drop_path2": drop_path,
    }


@cache
def head_rules() -> dict[str, dict[type, str]]:
    """The ViT's modules between its last block and the classifier (which gets ``Z_PLUS``)."""
    from timm.layers import LayerNorm as TimmLayerNorm

    norm = {nn.LayerNorm: IDENTITY, TimmLayerNorm: IDENTITY, nn.Identity: IDENTITY}
    return {"norm": norm, "fc_norm": norm, "head_drop": {nn.Dropout: IDENTITY, nn.Identity: IDENTITY}}


def check_rules(structure: VitStructure) -> None:
    """Raise :class:`UnsupportedModelError` naming the first module on the relevance path without a rule."""
    table = block_rules()
    for index, block in enumerate(structure.blocks):
        for path, module in block.named_modules():
            _check(table.get(path, {}), module, structure.where(f"blocks.{index}" + (f".{path}" if path else "")))
    for name, allowed in head_rules().items():
        _check(allowed, getattr(structure.vit, name), structure.where(name))


def _check(allowed: dict[type, str], module: nn.Module, where: str) -> None:
    if type(module) not in allowed:
        kind = f"{type(module).__module__}.{type(module).__qualname__}"
        raise UnsupportedModelError(f"transformer_attribution has no rule for module {where!r} ({kind})")


class Workspace:
    """Named buffers, allocated on first use and reused while the shape stays the same."""

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}

    def __call__(self, name: str, shape: torch.Size | tuple, like: torch.Tensor, dtype=None) -> torch.Tensor:
        dtype = like.dtype if dtype is None else dtype
        buffer = self._buffers.get(name)
        if buffer is None or buffer.shape != tuple(shape) or buffer.dtype != dtype:
            buffer = torch.empty(shape, dtype=dtype, device=like.device)
            self._buffers[name] = buffer
        return buffer


def safe_divide(num: torch.Tensor, den: torch.Tensor, work: Workspace, name: str, eps: float = EPS) -> torch.Tensor:
    """num / (den + eps), 0 where den == 0 (the published ``safe_divide``), into buffer ``name`` (may be ``den``)."""
    zero = torch.eq(den, 0, out=work(name + ".zero", den.shape, den, torch.bool))
    out = torch.add(den, eps, out=work(name, den.shape, den))
    return torch.div(num, out, out=out).masked_fill_(zero, 0)


def z_plus(relevance, x, weight, out, bias, work: Workspace, name: str) -> torch.Tensor:
    """The published Linear rule (alpha 1, beta 0, bias ignored): R_in = x+ (S W+) + x- (S W-) with
    S = R / (x+ W+ᵀ + x- W-ᵀ + 1e-9). ``out`` = x Wᵀ + ``bias`` is the layer's output in the forward.
    With x+ W+ᵀ + x- W-ᵀ = (x Wᵀ + |x| |W|ᵀ)/2 and the same identity for the backward:
    R_in = x (s W) + |x| (s |W|), s = R / (x Wᵀ + |x| |W|ᵀ + 2e-9): three matrix products instead of
    four. The result lives in buffer ``name``.

    The identity costs precision only where Z is tiny next to |x| |W|ᵀ (almost every input-weight product
    of an output negative), which dense layers on LayerNorm and GELU outputs practically never meet. The
    zero mask of the safe division is left out: where a whole input or weight row is 0, so is every
    product it meets below, and an exact Z = 0 of any other kind cannot be told from rounding here."""
    den = work(name + ".z", out.shape, out)
    if bias is None:
        torch.add(out, 2 * EPS, out=den)
    else:
        torch.sub(out, bias - 2 * EPS, out=den)  # x Wᵀ + 2e-9
    abs_w = torch.abs(weight, out=work(name + ".abs_w", weight.shape, weight))
    abs_x = torch.abs(x, out=work(name + ".abs_x", x.shape, x))
    den.view(-1, den.shape[-1]).addmm_(abs_x.view(-1, x.shape[-1]), abs_w.T)
    s = torch.div(relevance, den, out=den)
    result = torch.matmul(s, weight, out=work(name, x.shape, x)).mul_(x)
    return result.addcmul_(abs_x, torch.matmul(s, abs_w, out=work(name + ".abs", x.shape, x)))


def residual_split(relevance, skip, branch, total, work: Workspace) -> tuple[torch.Tensor, torch.Tensor]:
    """The published Add rule, per image: the proportional (LRP-0) split of ``relevance`` between the
    two summands, then each part rescaled so that its sum is its share |sum_a| / (|sum_a| + |sum_b|)
    of the image's total relevance (a part with a negative sum flips sign). Into buffers "add.*"."""
    s = safe_divide(relevance, total, work, "add.s")
    a = torch.mul(skip, s, out=work("add.a", s.shape, s))
    b = s.mul_(branch)
    a_sum, b_sum, r_sum = (_image_sum(t) for t in (a, b, relevance))
    both = a_sum.abs() + b_sum.abs()
    a_share, b_share = sdiv(a_sum.abs(), both) * r_sum, sdiv(b_sum.abs(), both) * r_sum
    return a.mul_(sdiv(a_share, a_sum)), b.mul_(sdiv(b_share, b_sum))


def fork_merge(x, first, second, work: Workspace, rows: slice = slice(None)) -> torch.Tensor:
    """The published Clone rule where a residual forks: x (R_1 / x + R_2 / x), safe divisions (the factor x
    makes the zero mask unnecessary), computed as x (R_1 + R_2) / (x + 1e-9). ``first`` may cover only the
    token ``rows`` (zero elsewhere). Into buffer "fork"."""
    den = torch.add(x, EPS, out=work("fork.den", x.shape, x))
    out = work("fork", x.shape, x)
    if rows == slice(None):
        torch.add(first, second, out=out)
    else:
        out.copy_(second)[:, rows] += first
    return out.mul_(x).div_(den)


def _image_sum(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).sum(1).view((-1,) + (1,) * (t.dim() - 1))
