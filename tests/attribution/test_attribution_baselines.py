"""Baselines: shapes and devices, agreement with direct hand computations, the seeded random map,
and our LRP composite's conservation."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from probe import METHODS, explain
from probe.attribution.baselines import gradcam_layer
from probe.attribution.graph import trace
from probe.attribution.transformer import VIT_METHODS
from tests.support.agf_models import resnet_with_head


def tiny_cnn(bias: bool = True, relu: bool = True) -> nn.Module:
    torch.manual_seed(0)
    act = nn.ReLU if relu else nn.Identity
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=bias),
        act(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1, bias=bias),
        act(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 3, bias=bias),
    ).eval()


@pytest.fixture(scope="module")
def images():
    return torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))


@pytest.mark.parametrize("method", [m for m in METHODS if m not in VIT_METHODS])  # ViTs: test_vit_models.py
def test_every_method_gives_float32_maps_of_the_image_size(method, images):
    options = {"n_steps": 4} if method == "integrated_gradients" else {}
    maps = explain(resnet_with_head(), images, method=method, **options)
    assert maps.shape == (2, 16, 16) and maps.dtype == torch.float32 and maps.device == images.device
    assert torch.isfinite(maps).all() and not maps.requires_grad


def _logit_gradient(model, x, targets, wrt):
    logits = model(x)
    return torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), wrt)[0]


def test_gradcam_matches_a_hand_computation(images):
    model = tiny_cnn()
    targets = torch.tensor([2, 0])
    assert gradcam_layer(trace(model)) == "4"
    feats = {}
    handle = model[4].register_forward_hook(lambda m, i, o: feats.setdefault("a", o))
    try:
        logits = model(images)
    finally:
        handle.remove()
    a = feats["a"]
    grads = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), a)[0]
    cam = F.relu((grads.mean((2, 3), keepdim=True) * a).sum(1, keepdim=True))
    want = F.interpolate(cam, size=(16, 16), mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(explain(model, images, target=targets, method="gradcam"), want.detach())


def test_saliency_and_input_x_gradient_match_hand_computations(images):
    model = tiny_cnn()
    targets = torch.tensor([1, 2])
    x = images.clone().requires_grad_()
    grad = _logit_gradient(model, x, targets, x)
    torch.testing.assert_close(explain(model, images, target=targets, method="saliency"), grad.abs().amax(1))
    torch.testing.assert_close(
        explain(model, images, target=targets, method="input_x_gradient"), (images * grad).sum(1)
    )


def test_integrated_gradients_of_a_linear_model_is_input_times_gradient(images):
    model = tiny_cnn(relu=False)
    model[2] = nn.AvgPool2d(2)  # keep the model linear
    ig = explain(model, images, target=1, method="integrated_gradients", n_steps=3)
    torch.testing.assert_close(ig, explain(model, images, target=1, method="input_x_gradient"), rtol=1e-4, atol=1e-6)


def test_random_map_is_seeded_and_batch_independent(images):
    model = tiny_cnn()
    first = explain(model, images, method="random", seed=3)
    assert torch.equal(first, explain(model, images, method="random", seed=3))
    assert not torch.equal(first, explain(model, images, method="random", seed=4))
    assert torch.equal(first[1:], explain(model, images[1:], method="random", seed=3))
    assert not torch.equal(first[0], first[1])
    assert first.min() >= 0 and first.max() < 1


class TinyResidual(nn.Module):
    """Bias-free two-branch network: the functional addition must split relevance, not copy it."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1, self.conv2 = nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(4, 3, bias=False)

    def forward(self, x):
        a = self.relu(self.conv1(x))
        b = self.relu(self.conv2(a))
        return self.fc(torch.flatten(self.pool(self.relu(a + b)), 1))


@pytest.mark.parametrize("build", [lambda: tiny_cnn(bias=False), TinyResidual])
def test_lrp_conserves_the_target_logit_on_bias_free_relu_networks(build, images):
    model = build().double().eval()
    x = images.double()
    targets = torch.tensor([0, 2])
    with torch.no_grad():
        logits = model(x).gather(1, targets[:, None])[:, 0]
    maps = explain(model, x, target=targets, method="lrp")
    torch.testing.assert_close(maps.double().sum((1, 2)), logits, rtol=1e-5, atol=1e-6)


def test_lrp_runs_on_torchvision_resnet():
    model = torchvision.models.resnet18(num_classes=4).eval()
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    maps = explain(model, x, method="lrp")
    assert torch.isfinite(maps).all() and maps.abs().max() > 0


def test_gradcam_default_layers_of_torchvision_models():
    with torch.device("meta"):
        resnet, vgg = torchvision.models.resnet18(), torchvision.models.vgg11()
    assert gradcam_layer(trace(resnet)) == "layer4.1"
    assert gradcam_layer(trace(vgg)) == "features.20"
