"""Which rule each step gets: the classifier, the full/C-only/z^B conv rules, and the LRP composite.

AGF conv assignment (reproduces the published ResNet and VGG choices, and gives BasicBlock the
assignment that mirrors Bottleneck):

- ``zb``: a conv that reads the model input.
- inside a residual block (the steps between a fork and the addition that joins its two
  branches): the first conv of the main branch with a kernel larger than 1×1 gets ``full``;
  every other conv of the block (1×1 convs, the second 3×3 of a BasicBlock, downsample
  convs) gets ``flat`` (C only). The main branch is the one with more convs.
- every other conv (VGG's features): ``full``.

``explain(..., composite={"layer1.0.conv2": "full"})`` overrides single convs by module path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn as nn

from probe.errors import ProbeTypeError, ProbeValueError

from . import lrp, rules
from .graph import Graph, Step, trace

CONV_MODES = ("full", "flat", "zb")


@dataclass(frozen=True)
class Block:
    """A residual block: the steps of its two branches, the main branch first."""

    main: frozenset[int]
    skip: frozenset[int]

    @property
    def steps(self) -> frozenset[int]:
        return self.main | self.skip


def classifier_step(graph: Graph) -> Step:
    """The Linear layer whose outputs are the class scores (identity-like steps after it are allowed)."""
    step = graph.producer(graph.output)
    while step is not None and step.kind == "identity":
        step = graph.producer(step.inputs[0])
    if step is None or step.kind != "linear":
        last = "the model input" if step is None else f"{step.where} ({step.kind})"
        raise ProbeValueError(
            f"the model must end in a Linear layer whose outputs are the classes; its output comes from {last}"
        )
    return step


def _source(graph: Graph, value: str) -> Step | None:
    """The step that really produced ``value``, looking through identity steps (None: the model input)."""
    step = graph.producer(value)
    while step is not None and step.kind == "identity":
        step = graph.producer(step.inputs[0])
    return step


def _ancestors(graph: Graph) -> dict[int, frozenset[int]]:
    """For every step, the indices of all steps it depends on (not itself)."""
    anc: dict[int, frozenset[int]] = {}
    for step in graph.steps:
        found: set[int] = set()
        for value in step.inputs:
            producer = graph.producer(value)
            if producer is not None:
                found.add(producer.index)
                found |= anc[producer.index]
        anc[step.index] = frozenset(found)
    return anc


def residual_blocks(graph: Graph) -> list[Block]:
    """Every addition of two tensors that fork from a common value, as a :class:`Block`."""
    anc = _ancestors(graph)
    blocks = []
    for step in graph.steps:
        if step.kind != "add":
            continue
        sides = []
        for value in step.inputs:
            producer = graph.producer(value)
            sides.append(set() if producer is None else set(anc[producer.index]) | {producer.index})
        common = sides[0] & sides[1]
        fork = max(common) if common else -1  # -1: the branches fork at the model input
        branches = [
            frozenset(s for s in side if s > fork and (fork < 0 or fork in anc[s])) for side in sides
        ]
        convs = [sum(graph.steps[s].kind == "conv" for s in b) for b in branches]
        main, skip = (branches[1], branches[0]) if convs[1] > convs[0] else (branches[0], branches[1])
        blocks.append(Block(main, skip))
    return blocks


def conv_modes(graph: Graph, overrides: Mapping[str, str] | None = None) -> dict[int, str]:
    """The AGF rule of every conv step (index -> "full" | "flat" | "zb"), overrides applied."""
    blocks = residual_blocks(graph)
    modes: dict[int, str] = {}
    for step in graph.convs():
        if _source(graph, step.inputs[0]) is None:
            modes[step.index] = "zb"
            continue
        inside = [b for b in blocks if step.index in b.steps]
        if not inside:
            modes[step.index] = "full"
            continue
        block = min(inside, key=lambda b: len(b.steps))
        wide = [s for s in sorted(block.main) if graph.steps[s].kind == "conv" and _kernel_area(graph.steps[s]) > 1]
        modes[step.index] = "full" if wide and wide[0] == step.index else "flat"
    for path, mode in _checked_overrides(graph, overrides).items():
        for step in graph.convs():
            if step.where == path:
                modes[step.index] = mode
    return modes


def _kernel_area(step: Step) -> int:
    kh, kw = step.module.kernel_size
    return kh * kw


def _checked_overrides(graph: Graph, overrides: Mapping[str, str] | None) -> dict[str, str]:
    if overrides is None:
        return {}
    if not isinstance(overrides, Mapping):
        raise ProbeTypeError(f"composite must be a dict {{conv module path: rule}}, got {type(overrides).__name__}")
    paths = [s.where for s in graph.convs()]
    for path, mode in overrides.items():
        if path not in paths:
            shown = ", ".join(paths[:12]) + (f", ... ({len(paths)} convs)" if len(paths) > 12 else "")
            raise ProbeValueError(f"composite: no Conv2d at {path!r}; the model's convs are: {shown}")
        if mode not in CONV_MODES:
            raise ProbeValueError(f"composite[{path!r}]: unknown rule {mode!r}; choose one of {', '.join(CONV_MODES)}")
    return dict(overrides)


def conv_rules(model: nn.Module, composite: Mapping[str, str] | None = None) -> dict[str, str]:
    """The AGF rule each Conv2d of ``model`` gets, by module path: ``"full"``, ``"flat"`` (C only) or ``"zb"``."""
    graph = trace(model)
    modes = conv_modes(graph, composite)
    return {graph.steps[i].where: mode for i, mode in sorted(modes.items())}


def nonnegative_values(graph: Graph) -> set[str]:
    """Values that are >= 0 by construction: ReLU outputs, and pools/reshapes/sums of such values."""
    found: set[str] = set()
    keeps_sign = ("maxpool", "avgpool", "adaptive_avgpool", "mean", "identity", "reshape", "add")
    for step in graph.steps:
        if step.kind == "relu" or (step.kind in keeps_sign and step.inputs and all(v in found for v in step.inputs)):
            found.add(step.output)
    return found


def _unflattened_source(graph: Graph, step: Step) -> str | None:
    """For a Linear fed by a flatten/view (through identity steps): the value that was flattened."""
    source = _source(graph, step.inputs[0])
    return source.inputs[0] if source is not None and source.kind == "reshape" else None


_SIMPLE_RULES = {
    "identity": rules.Rule,
    "meta": rules.MetaRule,
    "reshape": rules.ReshapeRule,
    "batchnorm": rules.BatchNormRule,
    "relu": rules.ReluRule,
    "maxpool": rules.MaxPoolRule,
    "avgpool": rules.AvgPoolRule,
    "adaptive_avgpool": rules.AdaptiveAvgPoolRule,
    "mean": rules.AdaptiveAvgPoolRule,
    "add": rules.AddRule,
}
_AGF_CONV = {"full": rules.AgfConvRule, "flat": rules.FlatConvRule, "zb": rules.BoundedConvRule}


#: Default stabiliser of the residual-addition split (``explain(..., residual_eps=0)`` is the published rule).
RESIDUAL_EPS = 0.01


def agf_rules(
    graph: Graph, dtype: torch.dtype, shapes: dict, overrides: Mapping[str, str] | None = None,
    residual_eps: float = RESIDUAL_EPS,
) -> tuple[dict[int, rules.Rule], int]:
    """One AGF rule per step, and the index of the classifier step where propagation starts."""
    start = classifier_step(graph)
    modes = conv_modes(graph, overrides)
    nonneg = nonnegative_values(graph)
    built: dict[int, rules.Rule] = {}
    for step in graph.steps:
        if step.index == start.index:
            built[step.index] = rules.AgfStartRule(step, dtype)
        elif step.kind == "conv":
            built[step.index] = _AGF_CONV[modes[step.index]](step, dtype, nonneg=step.inputs[0] in nonneg)
        elif step.kind == "linear":
            built[step.index] = rules.AgfLinearRule(step, dtype, _unflattened_source(graph, step), shapes)
        elif step.kind == "add":
            built[step.index] = rules.AddRule(step, dtype, residual_eps)
        else:
            built[step.index] = _SIMPLE_RULES[step.kind](step, dtype)
    return built, start.index


def lrp_rules(graph: Graph, dtype: torch.dtype, epsilon: float) -> tuple[dict[int, rules.Rule], int]:
    """The LRP composite: z^B on the first conv, z+ on the other convs (BatchNorm folded in),
    epsilon on Linear layers, z-rules on pools and additions, pass-through on ReLU and BatchNorm."""
    start = classifier_step(graph)
    built: dict[int, rules.Rule] = {}
    for step in graph.steps:
        if step.index == start.index:
            built[step.index] = lrp.LrpStartRule(step, dtype, epsilon)
        elif step.kind == "conv":
            if _source(graph, step.inputs[0]) is None:
                built[step.index] = rules.BoundedConvRule(step, dtype)
            else:
                built[step.index] = lrp.ZPlusConvRule(step, dtype, _folded_batchnorm(graph, step))
        elif step.kind == "linear":
            built[step.index] = lrp.EpsilonLinearRule(step, dtype, epsilon)
        elif step.kind in ("relu", "batchnorm"):
            built[step.index] = lrp.PassThroughRule(step, dtype) if step.kind == "relu" else rules.BatchNormRule(step, dtype)
        else:
            built[step.index] = _SIMPLE_RULES[step.kind](step, dtype)
    return built, start.index


def _folded_batchnorm(graph: Graph, step: Step) -> nn.Module | None:
    """The BatchNorm2d that alone reads this conv's output (folded into the conv for LRP), if any."""
    readers = graph.consumers.get(step.output, [])
    if len(readers) == 1 and graph.steps[readers[0]].kind == "batchnorm":
        return graph.steps[readers[0]].module
    return None
