"""The ViT methods leave the model exactly as it was, whether they return or raise: parameters and buffers,
gradients, requires_grad, train/eval flags, fused-attention and checkpointing flags, and hooks."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from probe.attribution.transformer import VIT_METHODS, patch_maps
from probe.errors import ProbeError
from tests.support.vit_models import recipe_vit


def snapshot(model: nn.Module) -> dict:
    modules = dict(model.named_modules())
    return {
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "grads": {k: None if p.grad is None else p.grad.clone() for k, p in model.named_parameters()},
        "requires_grad": {k: p.requires_grad for k, p in model.named_parameters()},
        "training": {k: m.training for k, m in modules.items()},
        "fused": {k: m.fused_attn for k, m in modules.items() if hasattr(m, "fused_attn")},
        "checkpointing": model.grad_checkpointing,
        "hooks": {
            k: (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks), len(m._backward_pre_hooks))
            for k, m in modules.items()
        },
    }


def assert_unchanged(model: nn.Module, before: dict) -> None:
    after = snapshot(model)
    assert after.keys() == before.keys()
    for key in ("requires_grad", "training", "fused", "checkpointing", "hooks"):
        assert after[key] == before[key], key
    for name, tensor in before["state"].items():
        assert torch.equal(after["state"][name], tensor), name
    for name, grad in before["grads"].items():
        now = after["grads"][name]
        assert (now is None) == (grad is None) and (grad is None or torch.equal(now, grad)), name


def awkward_model() -> nn.Module:
    """A model in a state explain must not disturb: mixed train/eval flags, fused attention on some blocks,
    gradient checkpointing, a frozen part, a stored gradient, a hook of the user's own."""
    model = recipe_vit(seed=1, depth=3, embed_dim=48, num_heads=3, img_size=64, attn_drop_rate=0.2).train()
    model.blocks[1].eval()
    model.blocks[0].attn.fused_attn = True
    model.blocks[2].attn.fused_attn = False
    model.set_grad_checkpointing(True)
    model.patch_embed.requires_grad_(False)
    model.head.weight.grad = torch.ones_like(model.head.weight)
    model.blocks[0].register_forward_hook(lambda module, args, out: None)
    return model


@pytest.mark.parametrize("method", list(VIT_METHODS))
def test_model_is_unchanged_after_a_call(method):
    model = awkward_model()
    before = snapshot(model)
    maps = patch_maps(model, torch.randn(2, 3, 64, 64), None, method)
    assert torch.isfinite(maps).all()
    assert_unchanged(model, before)


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("method", list(VIT_METHODS))
def test_model_is_unchanged_when_the_forward_raises(method):
    model = awkward_model()

    def explode(module, args, out):
        raise Boom("the user's hook")

    handle = model.blocks[2].mlp.register_forward_hook(explode)
    before = snapshot(model)
    with pytest.raises(Boom):
        patch_maps(model, torch.randn(1, 3, 64, 64), None, method)
    assert_unchanged(model, before)
    handle.remove()


def test_model_is_unchanged_when_the_structure_is_refused_after_the_forward():
    model = nn.Sequential(awkward_model(), nn.Softmax(dim=1))
    before = snapshot(model[0])
    with pytest.raises(ProbeError, match="not the output of its classifier"):
        patch_maps(model, torch.randn(1, 3, 64, 64), None, "transformer_attribution")
    assert_unchanged(model[0], before)
