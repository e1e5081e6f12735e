"""Which rule each step gets, as data: a family's rule per layer kind (its column of
``layers.LAYERS``), the rule of the classifier that starts the propagation, and overrides by
module path (the idea of Zennit's LayerMapComposite and NameMapComposite).

AGF's conv assignment is ``rules.agf.conv_mode``; ``explain(..., composite={"layer1.0.conv2": "full"})``
overrides single convs by module path, and :func:`conv_rules` shows the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn as nn

from probe.errors import ProbeTypeError, ProbeValueError

from .graph import Graph, trace
from .layers import LAYERS, StepKind
from .rules import agf, lrp
from .rules.base import Rule, RuleContext, RuleFactory


@dataclass(frozen=True)
class Composite:
    """Rules by layer kind, the classifier's rule, and rules by module path that take precedence."""

    by_kind: Mapping[StepKind, RuleFactory]
    start: RuleFactory
    by_path: Mapping[str, RuleFactory] = field(default_factory=dict)

    @classmethod
    def of_family(cls, family: str, start: RuleFactory) -> Composite:
        """The composite of one rule family: its column of the layer table."""
        return cls({row.kind: row.rules[family] for row in LAYERS}, start)

    def overridden(self, by_path: Mapping[str, RuleFactory]) -> Composite:
        """The same composite with these module paths' rules replaced."""
        return replace(self, by_path={**self.by_path, **by_path})

    def build(
        self, graph: Graph, dtype: torch.dtype, shapes: dict, settings: Mapping[str, Any]
    ) -> tuple[dict[int, Rule], int]:
        """One rule per step of ``graph``, and the index of the classifier step where propagation starts."""
        start = graph.classifier_step()
        context = RuleContext(graph, dtype, shapes, settings)
        built: dict[int, Rule] = {}
        for step in graph.steps:
            if step.index == start.index:
                factory = self.start
            elif step.module is not None and step.where in self.by_path:
                factory = self.by_path[step.where]
            else:
                factory = self.by_kind[step.kind]
            built[step.index] = factory(step, context)
        return built, start.index


#: AGF (docs/ATTRIBUTION.md, "How AGF is computed").
AGF = Composite.of_family("agf", agf.AgfStartRule.build)
#: Our LRP composite: z^B on the first conv, z+ on the others (BatchNorm folded in), epsilon on
#: Linear layers, z-rules on pools and additions, pass-through on ReLU and BatchNorm.
LRP = Composite.of_family("lrp", lrp.LrpStartRule.build)


def agf_overrides(graph: Graph, overrides: Mapping[str, str] | None) -> dict[str, RuleFactory]:
    """The rule factories of ``explain(..., composite={conv path: "full" | "flat" | "zb"})``, checked."""
    if overrides is None:
        return {}
    if not isinstance(overrides, Mapping):
        raise ProbeTypeError(f"composite must be a dict {{conv module path: rule}}, got {type(overrides).__name__}")
    paths = [s.where for s in graph.convs()]
    for path, mode in overrides.items():
        if path not in paths:
            shown = ", ".join(paths[:12]) + (f", ... ({len(paths)} convs)" if len(paths) > 12 else "")
            raise ProbeValueError(f"composite: no Conv2d at {path!r}; the model's convs are: {shown}")
        if mode not in agf.CONV_RULES:
            choices = ", ".join(agf.CONV_RULES)
            raise ProbeValueError(f"composite[{path!r}]: unknown rule {mode!r}; choose one of {choices}")
    return {path: agf.conv_rule(mode) for path, mode in overrides.items()}


def conv_rules(model: nn.Module, composite: Mapping[str, str] | None = None) -> dict[str, str]:
    """The AGF rule each Conv2d of ``model`` gets, by module path: ``"full"``, ``"flat"`` (C only) or ``"zb"``."""
    graph = trace(model)
    agf_overrides(graph, composite)
    chosen = dict(composite or {})
    return {step.where: chosen.get(step.where) or agf.conv_mode(graph, step) for step in graph.convs()}
