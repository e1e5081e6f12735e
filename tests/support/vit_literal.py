"""A slow, literal transcription of the ViT attribution specification, the oracle of the tests beyond the
published code (registers, LayerScale, pre-norm, QuickGELU, average pooling).

It shares nothing with ``probe.attribution.transformer``: one image at a time, an explicit forward that
calls the timm modules one by one (no hooks), every LRP rule in its textbook form (x+, x-, W+, W-
written out; the products' rules through autograd), full N×N matrix products for the rollouts, and
the classifier's reading of the tokens as an explicit mean of rows. ``test_vit_reference.py`` checks it
against the published maps first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sdiv(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a / (b + 1e-9), 0 where b == 0."""
    return torch.where(b == 0, torch.zeros_like(a), a / (b + 1e-9))


def z_plus(relevance, x, weight):
    xp, xn = x.clamp(min=0), x.clamp(max=0)
    wp, wn = weight.clamp(min=0), weight.clamp(max=0)
    s = sdiv(relevance, xp @ wp.T + xn @ wn.T)
    return xp * (s @ wp) + xn * (s @ wn)


def lrp0(relevance, f, *operands):
    """LRP-0 for z = f(operands): operand * (dz/d operand)ᵀ (R / z), by autograd."""
    leaves = [o.detach().requires_grad_(True) for o in operands]
    with torch.enable_grad():
        z = f(*leaves)
        grads = torch.autograd.grad(z, leaves, sdiv(relevance, z.detach()))
    return [leaf.detach() * g for leaf, g in zip(leaves, grads)]


def residual(relevance, a, b):
    ra, rb = lrp0(relevance, torch.add, a, b)
    total = relevance.sum()
    sa, sb = ra.sum(), rb.sum()
    fa = sdiv(sa.abs(), sa.abs() + sb.abs()) * total
    fb = sdiv(sb.abs(), sa.abs() + sb.abs()) * total
    return ra * sdiv(fa, sa), rb * sdiv(fb, sb)


def clone(x, r1, r2):
    return x * (sdiv(r1, x) + sdiv(r2, x))


def scaled(linear, layer_scale):
    """Weight of ``linear`` with the LayerScale after it folded in."""
    gamma = getattr(layer_scale, "gamma", None)
    return linear.weight if gamma is None else gamma[:, None] * linear.weight


def forward(vit, head, image):
    """Explicit forward of one image [1, C, H, W]; returns logits and what the rules need per block."""
    x = vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(image))))
    blocks = []
    for blk in vit.blocks:
        att = blk.attn
        keep = {"x": x, "h1": blk.norm1(x)}
        qkv = F.linear(keep["h1"], att.qkv.weight, att.qkv.bias)
        n = qkv.shape[1]
        q, k, v = qkv.reshape(1, n, 3, att.num_heads, att.head_dim).permute(2, 0, 3, 1, 4)
        probs = ((q @ k.transpose(-1, -2)) * att.scale).softmax(-1)
        o = (probs @ v).transpose(1, 2).reshape(1, n, -1)
        branch1 = blk.ls1(F.linear(o, att.proj.weight, att.proj.bias))
        middle = x + branch1
        h2 = blk.norm2(middle)
        f1 = F.linear(h2, blk.mlp.fc1.weight, blk.mlp.fc1.bias)
        act = blk.mlp.act(f1)
        branch2 = blk.ls2(F.linear(act, blk.mlp.fc2.weight, blk.mlp.fc2.bias))
        x = middle + branch2
        keep.update(q=q, k=k, v=v, probs=probs, o=o, branch1=branch1, middle=middle, h2=h2, act=act, branch2=branch2)
        blocks.append(keep)
    tokens = vit.norm(x)
    rows = pooled_rows(vit, tokens.shape[1])
    pooled = tokens[:, 0] if vit.global_pool == "token" else tokens[:, rows].mean(1)
    features = [vit.fc_norm(pooled)]  # the input of each Linear of the head, then the logits
    for linear in heads_of(head):
        features.append(F.linear(features[-1], linear.weight, linear.bias))
    return features.pop(), blocks, tokens, features


def heads_of(head):
    """The Linear layers from the pooled feature to the logits (one, or a list)."""
    return list(head) if isinstance(head, (list, tuple)) else [head]


def pooled_rows(vit, num_tokens):
    if vit.global_pool == "token":
        return [0]
    first = 0 if vit.pool_include_prefix else vit.num_prefix_tokens
    return list(range(first, num_tokens))


def cams(vit, head, blocks, tokens, features, target, start_layer):
    """Halved LRP relevance of each block's attention probabilities, blocks start_layer.. (None below)."""
    linears = heads_of(head)
    r = torch.zeros(1, linears[-1].out_features, dtype=tokens.dtype)
    r[0, target] = 1
    for linear, feature in reversed(list(zip(linears, features))):
        r = z_plus(r, feature, linear.weight)
    rows = pooled_rows(vit, tokens.shape[1])
    if vit.global_pool == "token":
        (r,) = lrp0(r, lambda t: t[:, 0], tokens)
    else:
        (r,) = lrp0(r, lambda t: t[:, rows].mean(1), tokens)
    out = [None] * len(blocks)
    for index in range(len(blocks) - 1, start_layer - 1, -1):
        blk, keep = vit.blocks[index], blocks[index]
        heads = blk.attn.num_heads
        r_skip, r_mlp = residual(r, keep["middle"], keep["branch2"])
        r_mlp = z_plus(r_mlp, keep["act"], scaled(blk.mlp.fc2, blk.ls2))
        r_mlp = z_plus(r_mlp, keep["h2"], blk.mlp.fc1.weight)
        r = clone(keep["middle"], r_skip, r_mlp)
        r_skip, r_att = residual(r, keep["x"], keep["branch1"])
        r_att = z_plus(r_att, keep["o"], scaled(blk.attn.proj, blk.ls1))
        r_att = r_att.reshape(1, -1, heads, blk.attn.head_dim).transpose(1, 2)
        r_probs, r_v = lrp0(r_att, torch.matmul, keep["probs"], keep["v"])
        cam, r_v = r_probs / 2, r_v / 2
        out[index] = cam
        r_q, r_k = lrp0(cam, lambda q, k: q @ k.transpose(-1, -2), keep["q"], keep["k"])
        r_qkv = torch.stack([r_q / 2, r_k / 2, r_v]).permute(1, 3, 0, 2, 4).reshape(1, -1, 3 * blk.attn.attn_dim)
        r = clone(keep["x"], r_skip, z_plus(r_qkv, keep["h1"], blk.attn.qkv.weight))
    return out


def literal_map(vit, head, image, target, method, start_layer=0):
    """The map on the patch grid [rows, cols] of one image [1, C, H, W] for class ``target``."""
    with torch.enable_grad():
        logits, blocks, tokens, features = forward(vit, head, image)
        probs = [b["probs"] for b in blocks]
        grads = torch.autograd.grad(logits[0, target], probs)
    blocks = [{k: v.detach() for k, v in b.items()} for b in blocks]
    n = tokens.shape[1]
    eye = torch.eye(n, dtype=tokens.dtype)
    mean_heads = [p.detach()[0].mean(0) for p in probs]
    if method == "raw_attention":
        joint = mean_heads[-1].clamp(min=0)
    elif method == "attention_rollout":
        joint = eye
        for a in mean_heads[start_layer:]:
            m = a + eye
            joint = (m / m.sum(-1, keepdim=True)) @ joint
    elif method == "generic_attention":
        joint = eye.clone()
        for p, g in zip(probs, grads):
            joint = joint + (g[0] * p.detach()[0]).clamp(min=0).mean(0) @ joint
    else:
        relevances = cams(vit, head, blocks, tokens.detach(), [f.detach() for f in features], target, start_layer)
        joint = eye
        for cam, g in list(zip(relevances, grads))[start_layer:]:
            joint = ((g[0] * cam[0]).clamp(min=0).mean(0) + eye) @ joint
    row = joint[pooled_rows(vit, n)].mean(0)[vit.num_prefix_tokens :]
    rows, cols = vit.patch_embed.grid_size
    return row.reshape(rows, cols)
