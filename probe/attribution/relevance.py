"""The relevance-propagation methods on our engine, AGF and LRP: trace the unmodified model,
give every step a rule, one forward, one reverse sweep (docs/ATTRIBUTION.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import torch
import torch.nn as nn

from probe.devices import model_device
from probe.errors import ProbeValueError

from .composite import AGF as AGF_COMPOSITE
from .composite import LRP as LRP_COMPOSITE
from .composite import agf_overrides
from .engine import Engine, Observer
from .graph import Graph, UnsupportedModelError, trace
from .inputs import ranked_targets
from .method import Method, MethodCall, ModelFacts, Option
from .numerics import max_per_sample
from .transformer.structure import vit_paths


def traced_facts(model: nn.Module) -> ModelFacts:
    """Trace ``model`` (raising ``UnsupportedModelError`` for what the engine has no rule for) and
    read its classes and input channels from the graph; the graph travels on as ``structure``."""
    refuse_vits(model)
    graph = trace(model)
    num_classes = cast(nn.Linear, graph.classifier_step().module).out_features
    first = [s for s in graph.convs() if s.inputs[0] == graph.input]
    if not first:
        return ModelFacts(num_classes, structure=graph)
    in_channels = cast(nn.Conv2d, first[0].module).in_channels
    return ModelFacts(num_classes, in_channels, f"first conv '{first[0].where}'", graph)


def refuse_vits(model: nn.Module) -> None:
    """A ViT is not a CNN: say so, and which methods explain it, instead of the trace's first unknown layer."""
    found = vit_paths(model)
    if found:
        where = f"at {found[0]!r}" if found[0] else "as the model"
        raise UnsupportedModelError(
            f"the model holds a timm VisionTransformer {where}; agf, lrp and gradcam explain CNNs: explain it "
            "with transformer_attribution (or generic_attention, attention_rollout, raw_attention)"
        )


def input_relevance(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    method: str = "agf",
    observer: Observer | None = None,
    **options: Any,
) -> torch.Tensor:
    """Relevance at the input [N, C, H, W] before the final normalisation, in ``images``' dtype.

    For tests and debugging: ``observer(step, r_out, g_out, r_ins)`` sees every step of the
    reverse sweep (``g_out`` is None where no rule below needs the gradient).
    """
    spec = {"agf": AGF, "lrp": LRP}.get(method)
    if spec is None:
        raise ProbeValueError(f"input_relevance: method must be 'agf' or 'lrp', got {method!r}")
    graph = trace(model)
    x = images.detach().to(model_device(model, images.device)).contiguous()
    return _propagate(graph, x, targets.to(x.device), 0, method, spec.resolve_options(options), observer)


#: Default stabiliser of the residual-addition split (``explain(..., residual_eps=0)`` is the published rule).
RESIDUAL_EPS = 0.01


def _residual_eps(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ProbeValueError(f"residual_eps must be a number in [0, 1), got {value!r}")
    return float(value)


def _propagate(
    graph: Graph,
    x: torch.Tensor,
    chosen: torch.Tensor | None,
    rank: int,
    method: str,
    options: Mapping[str, Any],
    observer: Observer | None = None,
) -> torch.Tensor:
    """Relevance at the input [N, C, H, W] for class ``chosen`` (None: each image's ``rank``-th class)."""
    shapes: dict = {}
    if method == "agf":
        composite = AGF_COMPOSITE.overridden(agf_overrides(graph, options["composite"]))
        rules, start = composite.build(graph, x.dtype, shapes, {"residual_eps": options["residual_eps"]})
    else:
        rules, start = LRP_COMPOSITE.build(graph, x.dtype, shapes, {"epsilon": options["epsilon"]})
    engine = Engine(graph, rules, start, shapes)
    logits = engine.forward(x)
    return engine.backward(ranked_targets(logits, rank) if chosen is None else chosen, observer)


def _agf_normalise(relevance: torch.Tensor) -> torch.Tensor:
    """The published final step, R / max(R) summed over channels. Where the maximum is <= 0 (the
    published division would flip the sign or give inf) we divide by max|R| instead, and leave an
    all-zero map at zero."""
    peak = max_per_sample(relevance)
    magnitude = max_per_sample(relevance.abs())
    scale = torch.where(peak > 0, peak, magnitude)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return (relevance / scale).sum(1)


def _run_agf(call: MethodCall) -> torch.Tensor:
    return _agf_normalise(_propagate(call.facts.structure, call.images, call.target, call.rank, "agf", call.options))


def _run_lrp(call: MethodCall) -> torch.Tensor:
    return _propagate(call.facts.structure, call.images, call.target, call.rank, "lrp", call.options).sum(1)


AGF = Method(
    "agf",
    _run_agf,
    options=(Option("composite"), Option("residual_eps", RESIDUAL_EPS, _residual_eps)),
    resolves_rank=True,
    inspect=traced_facts,
    description="Attribution Guided Factorization, exact, on the unmodified CNN",
)
LRP = Method(
    "lrp",
    _run_lrp,
    options=(Option("epsilon", 1e-6),),
    resolves_rank=True,
    inspect=traced_facts,
    description="layer-wise relevance propagation (z^B, z+, epsilon) on our engine",
)
