"""The relevance pass of transformer attribution: from the target's one-hot at the logits down through the
blocks, keeping each block's (halved) relevance of its attention probabilities.

It reads the tensors the model's own forward produced (``recording.Tape``) and the modules' weights; it
never calls or changes a module. Order inside a block, top down: second residual add, MLP (fc2, the
activation, fc1), the fork before it, first residual add, attention (proj, A·V, softmax, Q·Kᵀ, qkv),
the fork before it; the norms pass relevance unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn as nn

from ..numerics import sdiv
from .lrp_rules import Workspace, fork_merge, residual_split, safe_divide, without_bias, z_plus
from .recording import BlockTape, Tape
from .structure import VitStructure


def attention_relevance(
    structure: VitStructure, tape: Tape, targets: torch.Tensor, start_layer: int
) -> Iterator[tuple[int, torch.Tensor]]:
    """(block index, halved relevance of its attention probabilities [B, H, N, N]) from the last block
    down to ``start_layer``, for class ``targets`` [B]; the relevance seed is the one-hot (value 1) of
    the target at the logits. Each yielded tensor is a buffer that the next block reuses."""
    work = Workspace()
    relevance = torch.zeros_like(tape.logits).scatter_(1, targets[:, None], 1)
    for (_, linear), (x, out) in reversed(list(zip(structure.linears, tape.linears))):
        relevance = z_plus(relevance, x, linear.weight, without_bias(out, linear.bias, work, "head.xw"), work, "head")
        relevance = relevance.clone()  # the next Linear down reuses the buffers
    relevance = _pool_rule(structure, tape.tokens, relevance)
    for index in range(len(tape.blocks) - 1, start_layer - 1, -1):
        relevance, cam = _block_rule(structure.blocks[index], tape.blocks[index], relevance, index > start_layer, work)
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


def _folded(linear: nn.Linear, scale: nn.Module, branch: torch.Tensor, work: Workspace, name: str):
    """The weight of ``linear`` with the LayerScale after it folded in (diag(gamma)·W), and x Wᵀ of the
    folded layer, read from the branch's output (gamma (x Wᵀ + b) - gamma b)."""
    gamma = getattr(scale, "gamma", None)
    if gamma is None:
        return linear.weight, without_bias(branch, linear.bias, work, name + ".xw")
    weight = torch.mul(linear.weight, gamma[:, None], out=work(name + ".w", linear.weight.shape, branch))
    bias = None if linear.bias is None else gamma * linear.bias
    return weight, without_bias(branch, bias, work, name + ".xw")


def _block_rule(block: nn.Module, tape: BlockTape, relevance: torch.Tensor, below: bool, work: Workspace):
    """(relevance at the block's input, or None when ``below`` is False and nothing under the block is
    needed; halved relevance of the block's attention probabilities)."""
    attn, mlp = block.attn, block.mlp
    middle = torch.add(tape.x, tape.attn_branch, out=work("middle", tape.x.shape, tape.x))
    r_skip, r_mlp = residual_split(relevance, middle, tape.mlp_branch, tape.out, work)
    weight, xw = _folded(mlp.fc2, block.ls2, tape.mlp_branch, work, "fc2")
    r_mlp = z_plus(r_mlp, tape.fc2_in, weight, xw, work, "fc2")
    xw = without_bias(tape.fc1_out, mlp.fc1.bias, work, "fc1.xw")
    r_mlp = z_plus(r_mlp, tape.fc1_in, mlp.fc1.weight, xw, work, "fc1")
    relevance = fork_merge(middle, r_skip, r_mlp, work)
    r_skip, r_attn = residual_split(relevance, tape.x, tape.attn_branch, middle, work)
    weight, xw = _folded(attn.proj, block.ls1, tape.attn_branch, work, "proj")
    r_attn = z_plus(r_attn, tape.proj_in, weight, xw, work, "proj")

    b, n, _ = tape.qkv.shape
    heads, dim = attn.num_heads, attn.head_dim
    shape = (b, heads, n, dim)
    q, k, v = (
        work(name, shape, tape.qkv).copy_(part)
        for name, part in zip(("q", "k", "v"), tape.qkv.view(b, n, 3, heads, dim).permute(2, 0, 3, 1, 4))
    )
    probs = tape.attn
    # A·V: LRP-0 on both factors (Z = A·V, the proj input), each halved; A's half is the block's cam
    s = safe_divide(_heads(r_attn, heads), _heads(tape.proj_in, heads), work, "av.s")
    cam = torch.matmul(s, v.transpose(-1, -2), out=work("cam", probs.shape, probs)).mul_(probs).mul_(0.5)
    if not below:
        return None, cam
    packed = work("qkv.r", (b, n, 3, heads, dim), probs)
    r_v = torch.matmul(probs.transpose(-1, -2), s, out=work("part", shape, probs)).mul_(v).mul_(0.5)
    packed[:, :, 2].copy_(r_v.transpose(1, 2))
    # softmax: unchanged; Q·Kᵀ (unscaled, Z recomputed): LRP-0 on both factors, each halved
    s = safe_divide(cam, torch.matmul(q, k.transpose(-1, -2), out=work("qk", probs.shape, probs)), work, "qk")
    r_q = torch.matmul(s, k, out=work("part", shape, probs)).mul_(q).mul_(0.5)
    packed[:, :, 0].copy_(r_q.transpose(1, 2))
    r_k = torch.matmul(s.transpose(-1, -2), q, out=work("part", shape, probs)).mul_(k).mul_(0.5)
    packed[:, :, 1].copy_(r_k.transpose(1, 2))
    xw = without_bias(tape.qkv, attn.qkv.bias, work, "qkv.xw")
    r_qkv = z_plus(packed.view(b, n, 3 * heads * dim), tape.qkv_in, attn.qkv.weight, xw, work, "qkv")
    return fork_merge(tape.x, r_skip, r_qkv, work), cam


def _heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, N, H·d] -> [B, H, N, d] (a view)."""
    b, n, width = t.shape
    return t.view(b, n, heads, width // heads).transpose(1, 2)
