"""Walk a traced graph: one forward that keeps what each rule needs, then one reverse sweep.

The reverse sweep carries a relevance and (only where some rule below needs it) a gradient
per value. A value read by several steps (a residual fork) combines its relevances with the
published Clone rule, R = X * sum_i sdiv(R_i, X), and sums its gradients
(docs/ATTRIBUTION.md#residual-forks). Stored tensors are
dropped as soon as their step is done.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .graph import Graph, Step
from .layers import StepKind
from .numerics import div_eps
from .rules.base import Rule

# observer(step, relevance at its output, gradient at its output or None, relevances at its inputs)
Observer = Callable[[Step, "torch.Tensor | None", "torch.Tensor | None", list], None]


class Engine:
    """Relevance propagation over ``graph`` with one rule per step; ``start`` is the classifier's step index."""

    def __init__(self, graph: Graph, rules: dict[int, Rule], start: int, shapes: dict | None = None) -> None:
        self.graph = graph
        self.shapes = {} if shapes is None else shapes  # value name -> shape, read by shape-dependent rules
        self.rules = rules
        self.start = start
        self.forks: dict[str, torch.Tensor] = {}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Run every step out of place (no autograd), keep what the rules need; return the logits."""
        graph = self.graph
        last_read: dict[str, int] = {}
        for step in graph.steps:
            reads = step.node.all_input_nodes if step.node is not None else ()
            for name in [n.name for n in reads] + list(step.inputs):
                last_read[name] = step.index
        drop_after: dict[int, list[str]] = {}
        for name, index in last_read.items():
            drop_after.setdefault(index, []).append(name)
        values: dict[str, object] = {graph.input: images}
        self.shapes[graph.input] = images.shape
        self.forks = {}
        if len(graph.consumers.get(graph.input, ())) > 1:
            self.forks[graph.input] = images
        logits = None
        with torch.no_grad():
            for step in graph.steps[: self.start + 1]:
                out = self.rules[step.index].forward(values)
                values[step.output] = out
                if isinstance(out, torch.Tensor):
                    self.shapes[step.output] = out.shape
                if len(graph.consumers.get(step.output, ())) > 1:
                    self.forks[step.output] = out
                for name in drop_after.get(step.index, ()):
                    values.pop(name, None)
            logits = values[graph.steps[self.start].output]
        if not isinstance(logits, torch.Tensor):
            raise RuntimeError(f"step {graph.steps[self.start].output!r} gave {type(logits).__name__}, not the logits")
        return logits

    def grad_needed(self) -> dict[str, bool]:
        """Whether the gradient at each value is needed by some rule at or below it."""
        need = {self.graph.input: False}
        for step in self.graph.steps[: self.start + 1]:
            if step.kind == StepKind.META:
                continue
            below = any(need[v] for v in step.inputs)
            need[step.output] = self.rules[step.index].uses_grad or below
        return need

    def backward(self, targets: torch.Tensor, observer: Observer | None = None) -> torch.Tensor:
        """Relevance at the model input [N, C, H, W] for class ``targets`` [N]."""
        graph = self.graph
        need = self.grad_needed()
        start = graph.steps[self.start]
        relevance: dict[str, list[torch.Tensor]] = {}
        grads: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            r_in, g_in = self.rules.pop(start.index).start(targets, need[start.inputs[0]])
            self._deliver(start, [r_in], [g_in], relevance, grads, need)
            if observer is not None:
                observer(start, None, None, [r_in])
            for step in reversed(graph.steps[: self.start]):
                if step.kind == StepKind.META:
                    continue
                r_out = self._combine(step.output, relevance.pop(step.output))
                g_out = grads.pop(step.output, None)
                rule = self.rules.pop(step.index)  # done after this: its stored tensors and caches go
                if rule.uses_grad and g_out is None:
                    raise RuntimeError(f"internal error: no gradient reached {step.where}")
                seen = r_out.clone() if observer is not None else None  # rules may overwrite r_out
                r_ins, g_ins = rule.backward(r_out, g_out, [need[v] for v in step.inputs])
                if observer is not None:
                    observer(step, seen, g_out, r_ins)
                self._deliver(step, r_ins, g_ins, relevance, grads, need)
                del rule, r_out, g_out, r_ins, g_ins
            return self._combine(graph.input, relevance.pop(graph.input))

    def _deliver(self, step, r_ins, g_ins, relevance, grads, need) -> None:
        for value, r, g in zip(step.inputs, r_ins, g_ins):
            relevance.setdefault(value, []).append(r)
            if need[value] and g is not None:
                grads[value] = g if value not in grads else grads[value] + g

    def _combine(self, value: str, parts: list[torch.Tensor]) -> torch.Tensor:
        """A value read by several steps: the published Clone rule X * sum_i sdiv(R_i, X)."""
        if len(parts) == 1:
            return parts[0]
        x = self.forks.pop(value)
        # The result is multiplied by x, so the zero mask of sdiv (where x == 0) is not needed.
        total = div_eps(parts[0], x)
        for part in parts[1:]:
            total.add_(div_eps(part, x))
        return total.mul_(x)
