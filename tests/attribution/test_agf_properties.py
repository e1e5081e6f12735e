"""Properties of the AGF engine: batch independence, class specificity, per-layer conservation
of the signed relevance sum, determinism, and the gradient stream being backprop of p_t."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from probe import explain
from probe.attribution import input_relevance
from tests.support.agf_models import functional_net, resnet_with_head, tiny_vgg


@pytest.fixture(scope="module")
def images():
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("build", [tiny_vgg, resnet_with_head, functional_net])
def test_batch_gives_the_same_maps_as_one_by_one(build, images):
    model = build().double()
    x = images.double()
    together = explain(model, x, target=[0, 3, 1])
    alone = torch.cat([explain(model, x[i : i + 1], target=t) for i, t in enumerate([0, 3, 1])])
    torch.testing.assert_close(together, alone, rtol=1e-6, atol=1e-6)


def test_changing_the_target_changes_vgg_maps(images):
    model = tiny_vgg()
    maps = [explain(model, images, target=c) for c in range(3)]
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        for i in range(images.shape[0]):
            r = torch.corrcoef(torch.stack([maps[a][i].flatten(), maps[b][i].flatten()]))[0, 1]
            assert r < 0.99, f"maps for classes {a} and {b} of image {i} are nearly identical (r={r:.4f})"


def test_explain_is_deterministic(images):
    model = resnet_with_head()
    assert torch.equal(explain(model, images), explain(model, images))


# docs/ATTRIBUTION.md#invariants: every rule preserves the signed sum of relevance, up to the 1e-9 stabiliser
CONSERVING = (
    "conv",
    "linear",
    "batchnorm",
    "relu",
    "maxpool",
    "avgpool",
    "adaptive_avgpool",
    "mean",
    "add",
    "reshape",
    "identity",
)


@pytest.mark.parametrize("build", [tiny_vgg, lambda: tiny_vgg(batchnorm=True), resnet_with_head, functional_net])
def test_each_layer_conserves_the_signed_relevance_sum(build, images):
    model = build().double()
    seen = []

    def observe(step, r_out, g_out, r_ins):
        if r_out is not None:
            seen.append((step, r_out.flatten(1), torch.cat([r.flatten(1) for r in r_ins], 1)))

    # the published residual split (residual_eps=0) conserves; the default stabilised one gives up
    # conservation where the branches cancel (test_residual_split_stays_bounded_where_the_branches_cancel)
    relevance = input_relevance(model, images.double(), torch.tensor([0, 1, 2]), observer=observe, residual_eps=0.0)
    kinds = {step.kind for step, _, _ in seen}
    assert {"conv", "relu", "batchnorm" if "add" in kinds else "linear"} <= kinds
    for step, r_out, r_in in seen:
        assert step.kind in CONSERVING
        # The stabiliser weighs each output's relevance by Z / (Z + 1e-9): a relative change below
        # 1e-5 while the activations involved stay above 1e-4. A wrong rule changes the sum by O(1).
        scale = r_out.abs().sum(1) + r_in.abs().sum(1)
        gap = (r_out.sum(1) - r_in.sum(1)).abs()
        assert (gap <= 1e-5 * scale).all(), f"{step.where} ({step.kind}): sum changed by {gap.max():.3g}"
    assert relevance.shape == images.shape


def test_gradient_stream_is_backprop_of_the_contrastive_softmax(images):
    """docs/ATTRIBUTION.md#the-start-signal: the gradient each rule sees is d p_t / d(its output),
    p = softmax(y_t exp(-d^2/2 s^2))."""
    model = resnet_with_head().double()
    x = images.double()
    targets = torch.tensor([4, 0, 2])
    captured = {}
    handles = [
        model.get_submodule(path).register_forward_hook(lambda m, i, o, path=path: captured.__setitem__(path, o))
        for path in ("0.layer1.0.conv1", "0.layer3.0.conv1", "0.layer4.0.conv1")
    ]
    try:
        logits = model(x)
    finally:
        for h in handles:
            h.remove()
    y_t = logits.gather(1, targets[:, None])
    sigma = (logits - y_t).abs().max(dim=1, keepdim=True)[0]
    p = F.softmax(y_t * torch.exp(-0.5 * ((logits - y_t) / sigma) ** 2), dim=1)
    want = dict(zip(captured, torch.autograd.grad(p.gather(1, targets[:, None]).sum(), list(captured.values()))))
    got = {}

    def keep_wanted(s, r, g, rs):
        if s.where in want:
            got[s.where] = g

    input_relevance(model, x, targets, observer=keep_wanted)
    assert set(got) == set(want)
    for path in want:
        torch.testing.assert_close(got[path], want[path], rtol=1e-9, atol=1e-12)


def test_a_confident_head_still_gets_a_map(images):
    # Scale the classifier until p_t of the gaussian-contrast softmax is exactly 1.0 in float32 (the
    # textbook dp_t/dz = p_t (1 - p_t) is then 0, an all-zero map); the map must match float64's.
    model = tiny_vgg()
    last = model.classifier[-1]
    with torch.no_grad():
        last.weight.mul_(1e4)
        last.bias.mul_(1e4)
        y = model(images)
    t = y.argmax(1, keepdim=True)
    y_t = y.gather(1, t)
    diff = y - y_t
    z = y_t * torch.exp(-0.5 * (diff / diff.abs().amax(1, keepdim=True)) ** 2)
    p_t = F.softmax(z, dim=1).gather(1, t)
    assert torch.all(p_t == 1.0), "precondition: the float32 softmax saturates"
    assert torch.all(F.softmax(z.double(), dim=1).gather(1, t) < 1.0), "precondition: float64 does not"
    single = explain(model, images)
    double = explain(model.double(), images.double())
    assert torch.all(single.abs().amax((1, 2)) > 0)
    for a, b in zip(single, double):
        assert torch.corrcoef(torch.stack([a.flatten().double(), b.flatten()]))[0, 1] > 0.999
