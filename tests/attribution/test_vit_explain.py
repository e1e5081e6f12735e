"""The four ViT methods through the method registry: ``probe.explain`` gives the maps of ``vit_maps``,
``supports`` answers from the structural checks, and the CNN methods refuse a ViT by naming the ViT ones."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

import probe
from probe.attribution import UnsupportedModelError, get_method, supports
from probe.attribution.transformer import VIT_METHODS, vit_maps
from probe.errors import ProbeTypeError, ProbeValueError
from tests.support.agf_models import resnet_with_head
from tests.support.vit_models import as_backbone, recipe_vit
from unsupervised import ProbeModel

TINY = {"depth": 3, "embed_dim": 48, "num_heads": 3, "patch_size": 16, "img_size": 64, "num_classes": 6}


def probe_model(seed: int = 3, **kwargs) -> nn.Module:
    """A headless recipe ViT in a Backbone with a Linear head outside it, as the pipeline builds it."""
    model = recipe_vit(seed=seed, **{**TINY, **kwargs})
    head = copy.deepcopy(model.head)
    model.reset_classifier(0)
    return ProbeModel(as_backbone(model, 48, 64), head)


def batch(n: int = 3) -> torch.Tensor:
    return torch.randn(n, 3, 64, 64, generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize("method", list(VIT_METHODS))
def test_explain_gives_the_maps_of_vit_maps(method):
    model, x = probe_model(), batch()
    options = {"start_layer": 1} if "start_layer" in VIT_METHODS[method] else {}
    targets = torch.tensor([0, 5, 2])
    ours = probe.explain(model, x, target=[0, 5, 2], method=method, **options)
    assert ours.shape == (3, 64, 64) and ours.dtype == torch.float32
    assert torch.equal(ours, vit_maps(model, x, targets, method, **options))
    assert torch.equal(probe.explain(model, x, rank=1, method=method), vit_maps(model, x, None, method, rank=1))
    assert torch.equal(probe.explain(model, x, method=method), vit_maps(model, x, None, method))


@pytest.mark.parametrize("method", ["attention_rollout", "raw_attention"])
def test_rollout_and_raw_attention_are_class_independent_and_say_so(method):
    model, x = probe_model(), batch(2)
    assert not get_method(method).needs_target and "class-independent" in get_method(method).description
    first, other = (probe.explain(model, x, target=t, method=method) for t in (0, 4))
    assert torch.equal(first, other)


@pytest.mark.parametrize("method", ["transformer_attribution", "generic_attention"])
def test_the_class_specific_methods_depend_on_the_class(method):
    model, x = probe_model(), batch(2)
    assert get_method(method).needs_target
    first, other = (probe.explain(model, x, target=t, method=method) for t in (0, 4))
    assert not torch.equal(first, other)


def test_supports_answers_from_the_structure():
    vit, cnn = probe_model(), resnet_with_head()
    for method in VIT_METHODS:
        assert supports(vit, method)
        answer = supports(cnn, method)
        assert not answer and f"{method} explains timm VisionTransformers" in answer.reason
    silu = probe_model()
    silu.backbone.model.blocks[1].mlp.act = nn.SiLU()  # no LRP rule: only transformer attribution needs one
    answer = supports(silu, "transformer_attribution")
    assert not answer and "'backbone.model.blocks.1.mlp.act'" in answer.reason
    assert all(supports(silu, m) for m in ("generic_attention", "attention_rollout", "raw_attention"))


@pytest.mark.parametrize("method", ["agf", "lrp", "gradcam"])
def test_the_cnn_methods_refuse_a_vit_and_name_the_vit_methods(method):
    model = probe_model()
    assert not supports(model, method)
    with pytest.raises(UnsupportedModelError, match=r"VisionTransformer at 'backbone.model'.*transformer_attribution"):
        probe.explain(model, batch(1), method=method)


def test_bad_options_and_inputs_are_refused_through_explain():
    model, x = probe_model(), batch(1)
    with pytest.raises(ProbeValueError, match=r"start_layer must be in \[0, 2\]"):
        probe.explain(model, x, method="transformer_attribution", start_layer=3)
    with pytest.raises(ProbeTypeError, match="start_layer must be an int"):
        probe.explain(model, x, method="attention_rollout", start_layer=1.0)
    with pytest.raises(ProbeTypeError, match="its options: none"):
        probe.explain(model, x, method="raw_attention", start_layer=0)
    with pytest.raises(ProbeValueError, match="expects 3"):
        probe.explain(model, x[:, :1], method="generic_attention")
    with pytest.raises(ProbeValueError, match=r"target class 6 is outside the model.s classes \[0, 5\]"):
        probe.explain(model, x, target=6, method="transformer_attribution")
