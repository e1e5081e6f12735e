"""The public verb: targets and ranks, bad input, devices/dtypes, and leaving the model as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from probe import METHODS, explain
from probe.attribution import UnsupportedModelError
from probe.attribution.transformer import VIT_METHODS
from probe.errors import ProbeError
from tests.support.agf_models import assert_unchanged, resnet_with_head, snapshot, tiny_vgg

FAST_OPTIONS = {"integrated_gradients": {"n_steps": 4}}


@pytest.fixture(scope="module")
def images():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))


@pytest.fixture(scope="module")
def vgg():
    return tiny_vgg()


def test_output_is_float32_n_h_w_on_the_input_device(vgg, images):
    for dtype in (torch.float32, torch.float64):
        out = explain(vgg, images.to(dtype))
        assert out.shape == (2, 32, 32) and out.dtype == torch.float32 and out.device == images.device
        assert torch.isfinite(out).all() and not out.requires_grad


def test_agf_map_has_the_published_normalisation(vgg, images):
    from probe.attribution import input_relevance

    relevance = input_relevance(vgg, images, torch.tensor([1, 1]))
    peak = relevance.flatten(1).amax(1)
    assert (peak > 0).all()
    torch.testing.assert_close(explain(vgg, images, target=1), (relevance / peak.view(-1, 1, 1, 1)).sum(1))


def test_target_forms_and_rank(vgg, images):
    with torch.no_grad():
        order = vgg(images).argsort(1, descending=True)
    top1 = explain(vgg, images)
    assert torch.equal(top1, explain(vgg, images, target=order[:, 0]))
    assert torch.equal(top1, explain(vgg, images, target=order[:, 0].tolist()))
    assert torch.equal(explain(vgg, images, rank=2), explain(vgg, images, target=order[:, 2]))
    same = explain(vgg, images, target=3)
    assert torch.equal(same, explain(vgg, images, target=torch.tensor(3)))
    assert torch.equal(same, explain(vgg, images, target=(3, 3)))
    assert torch.equal(same, explain(vgg, images, target=np.array([3, 3])))


def test_float64_input_gives_the_float32_result_closely(vgg, images):
    torch.testing.assert_close(explain(vgg, images.double()), explain(vgg, images), rtol=1e-3, atol=1e-3)


BAD_INPUTS = [
    (lambda x: x[0], ValueError, "4-D"),
    (lambda x: x[:, :, :, :, None], ValueError, "4-D"),
    (lambda x: (x * 100).to(torch.uint8), TypeError, "float32 or float64"),
    (lambda x: x.half(), TypeError, "float16"),
    (lambda x: x[:, :1], ValueError, "expects 3"),
    (lambda x: x[:0], ValueError, "empty batch"),
    (lambda x: x.numpy(), TypeError, "torch.Tensor"),
    (lambda x: x.clone().fill_(float("nan")), ValueError, "NaN"),
]


@pytest.mark.parametrize("transform, error, words", BAD_INPUTS)
def test_bad_images_are_named(vgg, images, transform, error, words):
    with pytest.raises(error, match=words) as info:
        explain(vgg, transform(images))
    assert isinstance(info.value, ProbeError)


BAD_TARGETS = [
    (dict(target=5), ValueError, r"class 5 is outside .*\[0, 4\]"),
    (dict(target=-1), ValueError, "outside"),
    (dict(target=[0]), ValueError, "1 class ids but there are 2 images"),
    (dict(target=[0, 9]), ValueError, "class 9"),
    (dict(target=torch.tensor([0.0, 1.0])), TypeError, "integer class ids"),
    (dict(target="cat"), TypeError, "target must be"),
    (dict(target=True), TypeError, "bool"),
    (dict(rank=5), ValueError, "rank must be in"),
    (dict(target=0, rank=1), ValueError, "either target or rank"),
    (dict(method="gradient"), ValueError, "unknown attribution method 'gradient'; choose one of agf, gradcam"),
    (dict(colour="red"), TypeError, "unknown option.*colour.*composite"),
    (dict(method="random", n_steps=3), TypeError, "options: seed"),
    (dict(composite={"nope": "full"}), ValueError, "no Conv2d at 'nope'.*features.0"),
    (dict(composite={"features.3": "fancy"}), ValueError, "unknown rule 'fancy'"),
]


@pytest.mark.parametrize("kwargs, error, words", BAD_TARGETS)
def test_bad_targets_and_options_are_named(vgg, images, kwargs, error, words):
    with pytest.raises(error, match=words):
        explain(vgg, images, **kwargs)


class GeluNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GELU())
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.body(x).mean((2, 3)))


class SigmoidNet(GeluNet):
    def forward(self, x):
        return self.head(torch.sigmoid(self.body[0](x)).mean((2, 3)))


UNSUPPORTED = [
    (GeluNet(), r"module 'body.1' \(torch.nn.modules.activation.GELU\)"),
    (
        nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)),
        r"'1' \(.*GroupNorm\)",
    ),
    (SigmoidNet(), r"torch.sigmoid in the model's top-level forward"),
    (
        nn.Sequential(
            nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, track_running_stats=False), nn.Flatten(), nn.Linear(4 * 30 * 30, 2)
        ),
        "running statistics",
    ),
]


@pytest.mark.parametrize("model, words", UNSUPPORTED)
def test_unknown_module_or_operation_is_named(model, words, images):
    before = snapshot(model)
    with pytest.raises(UnsupportedModelError, match=words):
        explain(model, images)
    assert_unchanged(model, before)


def test_model_without_a_final_linear_is_refused(images):
    for model in (
        nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()),
        nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3), nn.ReLU()),
    ):
        with pytest.raises(ValueError, match="must end in a Linear layer"):
            explain(model, images)


def test_inplace_op_whose_input_is_read_again_is_refused(images):
    class Aliasing(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.relu, self.fc = nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True), nn.Linear(4, 2)

        def forward(self, x):
            y = self.conv(x)
            z = self.relu(y)
            return self.fc((z + y).mean((2, 3)))

    with pytest.raises(UnsupportedModelError, match="in place"):
        explain(Aliasing(), images)


@pytest.mark.parametrize("method", [m for m in METHODS if m not in VIT_METHODS])  # ViTs: test_vit_unchanged.py
def test_model_is_exactly_as_before_after_every_method(method, images):
    model = resnet_with_head()
    model.train()
    model[1].weight.grad = torch.ones_like(model[1].weight)
    model[0].bn1.weight.requires_grad_(False)
    before = snapshot(model)
    explain(model, images, method=method, **FAST_OPTIONS.get(method, {}))
    assert_unchanged(model, before)


def test_model_is_exactly_as_before_after_a_raising_call(images):
    model = resnet_with_head().train()
    before = snapshot(model)
    for kwargs in (dict(composite={"0.conv1": "nope"}), dict(method="gradcam", layer="0.nothing"), dict(target=99)):
        with pytest.raises(ProbeError):
            explain(model, images, **kwargs)
        assert_unchanged(model, before)


@pytest.mark.parametrize("method", ["agf", "gradcam", "saliency", "lrp"])
def test_training_mode_model_is_explained_with_inference_semantics(method, images):
    model = resnet_with_head()
    expected = explain(model, images, method=method)
    model.train()
    torch.testing.assert_close(explain(model, images, method=method), expected)
    assert all(m.training for m in model.modules())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
def test_cuda_matches_cpu(images):
    model = resnet_with_head()
    cpu = explain(model, images)
    gpu = explain(model.cuda(), images.cuda())
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-3, atol=1e-3)


def test_normalize_map_modes():
    from probe import normalize_map

    maps = torch.tensor([[[-2.0, 0.0], [1.0, 2.0]], [[3.0, 3.0], [3.0, 3.0]]])
    torch.testing.assert_close(normalize_map(maps), torch.tensor([[[0.0, 0.5], [0.75, 1.0]], [[0.0, 0.0], [0.0, 0.0]]]))
    torch.testing.assert_close(normalize_map(maps, "positive")[0], torch.tensor([[0.0, 0.0], [0.5, 1.0]]))
    torch.testing.assert_close(normalize_map(maps, "symmetric")[0], torch.tensor([[-1.0, 0.0], [0.5, 1.0]]))
    torch.testing.assert_close(normalize_map(maps[0]), normalize_map(maps)[0])
    with pytest.raises(ValueError, match="choose one of minmax, positive, symmetric"):
        normalize_map(maps, "log")
