"""The relevance pass of transformer attribution: from the target's one-hot at the logits down through the
blocks, keeping each block's (halved) relevance of its attention probabilities.

It reads the tensors the model's own forward produced (``recording.Tape``) and the modules' weights; it
never calls or changes a module. Order inside a block, top down: second residual add, MLP (fc2, the
activation, fc1), the fork before it, first residual add, attention (proj, A·V, softmax, Q·Kᵀ, qkv),
the fork before it; the norms pass relevance unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

import torch
import torch.nn as nn

from ..graph import UnsupportedModelError
from ..numerics import sdiv
from .lrp_rules import Workspace, fork_merge, residual_split, safe_divide, z_plus
from .recording import BlockTape, Tape
from .structure import VitStructure

if TYPE_CHECKING:
    from timm.layers.attention import Attention

ALL = slice(None)


def attention_relevance(
    structure: VitStructure, tape: Tape, targets: torch.Tensor, start_layer: int
) -> Iterator[tuple[int, torch.Tensor]]:
    """(block index, halved relevance of its attention probabilities [B, H, N, N]) from the last block
    down to ``start_layer``, for class ``targets`` [B]; the relevance seed is the one-hot (value 1) of
    the target at the logits. Each yielded tensor is a buffer that the next block reuses."""
    work = Workspace()
    relevance = torch.zeros_like(tape.logits).scatter_(1, targets[:, None], 1)
    for (_, linear), (x, out) in reversed(list(zip(structure.linears, tape.linears))):
        relevance = z_plus(relevance, x, linear.weight, out, linear.bias, work, "head").clone()
    relevance = _pool_rule(structure, tape.final_tokens(), relevance)
    # class-token pooling: at the last block's output only the class token's row holds relevance
    rows = slice(0, 1) if structure.pool == "token" else ALL
    for index in range(len(tape.blocks) - 1, start_layer - 1, -1):
        blk, below = structure.blocks[index], index > start_layer
        relevance, cam = _block_rule(blk, tape.blocks[index], relevance, below, work, rows)
        rows = ALL
        yield index, cam


def _pool_rule(structure: VitStructure, tokens: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
    """Relevance of the pooled feature [B, D] onto the final tokens [B, N, D]: all on the class token
    (the published IndexSelect rule, x_0 R / x_0), or for a mean the LRP-0 rule of the mean,
    R_i = x_i R / (count · mean); the final norm and fc_norm pass it unchanged."""
    out = torch.zeros_like(tokens)
    if structure.pool == "token":
        out[:, 0] = tokens[:, 0] * sdiv(relevance, tokens[:, 0])
        return out
    first = 0 if structure.pool_includes_prefix else structure.num_prefix
    pooled = tokens[:, first:].mean(1)
    out[:, first:] = tokens[:, first:] * (sdiv(relevance, pooled) / (tokens.shape[1] - first))[:, None]
    return out


def _folded(linear: nn.Linear, scale: nn.Module, work: Workspace, name: str):
    """Weight and bias of ``linear`` with the LayerScale after it folded in: diag(gamma)·W, gamma·b (the
    branch's output is the folded layer's output)."""
    gamma = getattr(scale, "gamma", None)
    if gamma is None:
        return linear.weight, linear.bias
    weight = torch.mul(linear.weight, gamma[:, None], out=work(name + ".w", linear.weight.shape, linear.weight))
    return weight, None if linear.bias is None else gamma * linear.bias


def _block_rule(block: nn.Module, tape: BlockTape, relevance, below: bool, work: Workspace, rows: slice):
    """(relevance at the block's input, or None when ``below`` is False and nothing under the block is
    needed; halved relevance of the block's attention probabilities). ``rows``: the tokens whose relevance
    at the block's output may be nonzero; the rules down to the attention probabilities' queries run on
    those rows only (the MLP, proj and residual rules act token by token)."""
    values = tape.full()
    # locate() checked that every block's attention is timm's Attention
    attn = cast("Attention", block.get_submodule("attn"))
    fc1, fc2 = _mlp_linear(block, "fc1"), _mlp_linear(block, "fc2")
    x, branch1, branch2 = values.x[:, rows], values.attn_branch[:, rows], values.mlp_branch[:, rows]
    middle = torch.add(x, branch1, out=work("middle", x.shape, x))
    r_skip, r_mlp = residual_split(relevance[:, rows], middle, branch2, values.out[:, rows], work)
    weight, bias = _folded(fc2, block.get_submodule("ls2"), work, "fc2")
    r_mlp = z_plus(r_mlp, values.fc2_in[:, rows], weight, branch2, bias, work, "fc2")
    r_mlp = z_plus(r_mlp, values.fc1_in[:, rows], fc1.weight, values.fc1_out[:, rows], fc1.bias, work, "fc1")
    relevance = fork_merge(middle, r_skip, r_mlp, work)
    r_skip, r_attn = residual_split(relevance, x, branch1, middle, work)
    weight, bias = _folded(attn.proj, block.get_submodule("ls1"), work, "proj")
    r_attn = z_plus(r_attn, values.proj_in[:, rows], weight, branch1, bias, work, "proj")

    b, n, _ = values.qkv.shape
    heads, dim = attn.num_heads, attn.head_dim
    shape = (b, heads, n, dim)
    q, k, v = (
        work(name, shape, values.qkv).copy_(part)
        for name, part in zip(("q", "k", "v"), values.qkv.view(b, n, 3, heads, dim).permute(2, 0, 3, 1, 4))
    )
    probs, q_rows = tape.attn, q[:, :, rows]
    # A·V: LRP-0 on both factors (Z = A·V, the proj input), each halved (by halving S); A's half is the cam
    s = safe_divide(_heads(r_attn, heads), _heads(values.proj_in[:, rows], heads), work, "av.s").mul_(0.5)
    cam = work("cam", probs.shape, probs)
    if rows == ALL:
        torch.matmul(s, v.transpose(-1, -2), out=cam).mul_(probs)
    else:
        cam.zero_()[:, :, rows] = (s @ v.transpose(-1, -2)).mul_(probs[:, :, rows])
    if not below:
        return None, cam
    packed = work("qkv.r", (b, n, 3, heads, dim), probs)
    r_v = torch.matmul(probs[:, :, rows].transpose(-1, -2), s, out=work("part", shape, probs)).mul_(v)
    packed[:, :, 2].copy_(r_v.transpose(1, 2))
    # softmax: unchanged; Q·Kᵀ (unscaled, Z recomputed): LRP-0 on both factors, each halved (by halving K)
    z = torch.matmul(q_rows, k.transpose(-1, -2), out=work("qk", cam[:, :, rows].shape, probs))
    s = safe_divide(cam[:, :, rows], z, work, "qk")
    k.mul_(0.5)
    r_k = torch.matmul(s.transpose(-1, -2), q_rows, out=work("part", shape, probs)).mul_(k)
    packed[:, :, 1].copy_(r_k.transpose(1, 2))
    if rows != ALL:
        packed[:, :, 0].zero_()
    packed[:, rows, 0] = (s @ k).mul_(q_rows).transpose(1, 2)
    r_qkv = z_plus(
        packed.view(b, n, 3 * heads * dim), values.qkv_in, attn.qkv.weight, values.qkv, attn.qkv.bias, work, "qkv"
    )
    return fork_merge(values.x, r_skip, r_qkv, work, rows), cam


def _mlp_linear(block: nn.Module, name: str) -> nn.Linear:
    """The block's MLP layer ``name`` (fc1 or fc2), which the rules read as a Linear."""
    layer = block.get_submodule(f"mlp.{name}")
    if not isinstance(layer, nn.Linear):
        raise UnsupportedModelError(
            f"transformer attribution reads the block's MLP as Linear layers; mlp.{name} is {type(layer).__name__}"
        )
    return layer


def _heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, N, H·d] -> [B, H, N, d] (a view)."""
    b, n, width = t.shape
    return t.view(b, n, heads, width // heads).transpose(1, 2)
