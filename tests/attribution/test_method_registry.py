"""The method registry: a method registered from outside the package (by call or by entry point)
works through ``probe.explain`` exactly like a built-in one, and bad registrations are refused."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn as nn

import probe
from probe.attribution import METHODS, Method, MethodCall, Option, explain, register_method, registry
from probe.errors import ProbeError
from tests.support.agf_models import assert_unchanged, resnet_with_head, snapshot
from tests.support.method_plugin import PLUGIN_MODULE, write_plugin_distribution


def _plugin_namespace() -> dict:
    namespace: dict = {"__name__": "third_party_methods"}
    exec(textwrap.dedent(PLUGIN_MODULE), namespace)
    return namespace


@pytest.fixture
def private_registry(monkeypatch):
    """Registrations made by a test go to a copy of the registry, dropped afterwards."""
    monkeypatch.setattr(registry, "_METHODS", dict(registry._METHODS))


@pytest.fixture
def images():
    return torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(5))


def _gradient_by_hand(model, images, targets):
    x = images.clone().requires_grad_(True)
    logits = model.eval()(x)
    return torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), x)[0].abs().sum(1)


def test_a_registered_method_works_through_probe_explain(private_registry, images):
    method = register_method(_plugin_namespace()["GRADIENT_MAGNITUDE"])
    assert method.origin == "user:third_party_methods"
    assert "plugin_gradient" in METHODS and list(METHODS)[-1] == "plugin_gradient"
    assert "plugin_gradient" in probe.METHODS  # the lazily bound top-level name reads the same registry
    model = resnet_with_head()
    before = snapshot(model)
    targets = torch.tensor([1, 0])
    maps = probe.explain(model, images, target=targets, method="plugin_gradient", scale=2.0)
    assert maps.shape == (2, 16, 16) and maps.dtype == torch.float32
    torch.testing.assert_close(maps, 2 * _gradient_by_hand(model, images, targets))
    assert_unchanged(model, before)
    # no target: explain resolves each image's rank-th class for it with one forward pass
    with torch.no_grad():
        second = model(images).argsort(1, descending=True)[:, 1]
    torch.testing.assert_close(
        explain(model, images, rank=1, method="plugin_gradient"), _gradient_by_hand(model, images, second)
    )
    with pytest.raises(ValueError, match="scale must be a positive number"):
        explain(model, images, method="plugin_gradient", scale=-1)
    with pytest.raises(TypeError, match="unknown option.*colour.*its options: scale"):
        explain(model, images, method="plugin_gradient", colour="red")
    with pytest.raises(ValueError, match=r"target class 9 is outside the model's classes \[0, 4\]"):
        explain(model, images, target=9, method="plugin_gradient")


def test_what_a_run_receives(private_registry, images):
    calls: list[MethodCall] = []

    def record(call: MethodCall) -> torch.Tensor:
        calls.append(call)
        return call.images.sum(1)

    register_method(Method("records", record, options=(Option("level", 3),)))
    register_method(Method("records_rank", record, resolves_rank=True))
    register_method(Method("records_no_class", record, needs_target=False))
    model = resnet_with_head()
    explain(model, images.double(), method="records")
    explain(model, images, rank=2, method="records_rank")
    explain(model, images, target=[1, 2], method="records_no_class")
    plain, ranked, classless = calls
    with torch.no_grad():
        top1 = model.eval()(images).argmax(1)
    assert torch.equal(plain.target, top1) and plain.options == {"level": 3} and plain.model is model
    assert plain.images.dtype == torch.float64 and not plain.images.requires_grad
    assert (ranked.target, ranked.rank) == (None, 2)
    assert classless.target is None


def test_bad_registrations_and_bad_maps_are_refused(private_registry, images):
    with pytest.raises(ProbeError, match="'agf' is already registered \\(builtin\\)"):
        register_method(Method("agf", lambda call: call.images.sum(1)))
    with pytest.raises(ProbeError, match="already registered"):
        register_method(Method("agf", lambda call: call.images.sum(1)), replace_existing=True)
    with pytest.raises(ProbeError, match="must be an identifier"):
        register_method(Method("my method", lambda call: call.images.sum(1)))
    with pytest.raises(TypeError, match="expects a probe.attribution.Method"):
        register_method(lambda call: call.images.sum(1))  # type: ignore[arg-type]
    register_method(Method("wrong_shape", lambda call: call.images))
    expected = r"method 'wrong_shape' returned \(2, 3, 16, 16\), expected maps of shape \(2, 16, 16\)"
    with pytest.raises(ValueError, match=expected):
        explain(resnet_with_head(), images, method="wrong_shape")


def test_model_agnostic_methods_do_not_need_a_traceable_model(images):
    class Gelu(nn.Module):  # the AGF engine has no rule for GELU
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(nn.functional.gelu(self.conv(x)).mean((2, 3)))

    model = Gelu()
    assert explain(model, images, method="saliency").shape == (2, 16, 16)
    assert explain(model, images, method="random", target=2).shape == (2, 16, 16)
    with pytest.raises(ValueError, match=r"target class 3 is outside the model's classes \[0, 2\]"):
        explain(model, images, method="saliency", target=3)
    with pytest.raises(probe.attribution.UnsupportedModelError, match="gelu"):
        explain(model, images, method="agf")


EXPLAIN_SCRIPT = """
import sys, torch, probe
from probe.attribution import get_method
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                            torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
images = torch.randn(2, 3, 12, 12)
maps = probe.explain(model, images, target=[0, 2], method="plugin_gradient", scale=3.0)
x = images.clone().requires_grad_(True)
grad = torch.autograd.grad(model(x)[[0, 1], [0, 2]].sum(), x)[0]
assert torch.allclose(maps, 3 * grad.abs().sum(1)), "maps differ"
print(get_method("plugin_gradient").origin, list(probe.METHODS)[-1], tuple(maps.shape))
"""


def test_entry_point_plugin_works_through_probe_explain(tmp_path):
    env = write_plugin_distribution(tmp_path / "site")
    done = subprocess.run([sys.executable, "-c", EXPLAIN_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["plugin:fake-method-plugin", "plugin_gradient", "(2,", "12,", "12)"]
