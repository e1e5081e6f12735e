"""The layer table drives the trace and the composites; ``supports`` answers from a method's
structural checks without running anything."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from probe.attribution import UnsupportedModelError, explain, supports
from probe.attribution.composite import AGF, LRP
from probe.attribution.graph import trace
from probe.attribution.layers import BY_KIND, LAYERS, StepKind
from tests.support.agf_models import resnet_with_head


def test_every_kind_has_one_row_with_a_rule_in_every_family():
    assert [row.kind for row in LAYERS] == list(StepKind) and len(BY_KIND) == len(StepKind)
    for row in LAYERS:
        assert set(row.rules) == {"agf", "lrp"}, row.kind
    assert set(AGF.by_kind) == set(LRP.by_kind) == set(StepKind)


def test_traced_steps_carry_their_kind_as_an_enum():
    graph = trace(resnet_with_head())
    kinds = {step.kind for step in graph.steps}
    assert all(isinstance(k, StepKind) for k in kinds)
    assert {StepKind.CONV, StepKind.BATCHNORM, StepKind.RELU, StepKind.ADD, StepKind.LINEAR} <= kinds
    assert graph.classifier_step().where == "1" and graph.reads_input(graph.convs()[0])
    assert len(graph.residual_blocks()) == sum(step.kind == StepKind.ADD for step in graph.steps)


def _same_padding_net(kernel: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, kernel, padding="same"), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)
    )


def test_same_padding_is_explained_when_symmetric_and_refused_at_the_trace_when_not():
    images = torch.randn(2, 3, 9, 9, generator=torch.Generator().manual_seed(1))
    same = _same_padding_net(3)
    explicit = _same_padding_net(3)
    explicit[0].padding = (1, 1)
    torch.testing.assert_close(explain(same, images, target=1), explain(explicit, images, target=1))
    with pytest.raises(UnsupportedModelError, match="Conv2d '0' uses asymmetric padding='same'"):
        trace(_same_padding_net(4))


class GeluNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(nn.functional.gelu(self.conv(x)).mean((2, 3)))


def test_supports_answers_from_the_structural_checks():
    assert supports(resnet_with_head()) and supports(resnet_with_head(), "lrp").reason == ""
    gelu = supports(GeluNet(), "agf")
    assert not gelu and gelu.method == "agf" and "gelu in the model's top-level forward" in gelu.reason
    assert supports(GeluNet(), "saliency") and supports(GeluNet(), "random")
    headless = supports(nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()), "gradcam")
    assert not headless and "must end in a Linear layer" in headless.reason
    with pytest.raises(ValueError, match="unknown attribution method 'agv'"):
        supports(GeluNet(), "agv")
