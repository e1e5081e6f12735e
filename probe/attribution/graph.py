"""Trace an unmodified model into the ordered list of steps the attribution engine walks.

``torch.fx`` only *reads* the model: known leaf modules become one step each, supported
functions/methods (additions, flatten/view, functional ReLU, mean over H×W, ...) become
steps too, and anything else raises :class:`UnsupportedModelError` naming the module
path and type. The user's modules are never called by the engine and never modified. Which operations
are supported, and as what kind of step, is the table in ``layers.py``; the structural questions
the rules ask (the classifier, residual blocks, sources through identity steps, values >= 0)
are :class:`Graph` methods.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from probe.errors import ProbeTypeError, ProbeValueError

from .layers import BY_KIND, LAYERS, SUPPORTED_MODULES, StepKind, UnsupportedModelError, leaf_kind

# keyed by the functions themselves; looked up with any traced call's target
_FUNCTION_KINDS: dict[object, StepKind] = {
    f: row.kind for row in LAYERS if row.kind != StepKind.META for f in row.functions
}
_METHOD_KINDS = {m: row.kind for row in LAYERS if row.kind != StepKind.META for m in row.methods}
_META = BY_KIND[StepKind.META]


@dataclass
class Step:
    """One operation of the traced model: what it is, where it is, which values it reads and writes."""

    index: int
    kind: StepKind
    where: str  # module path, or "<op> in <module path>"
    inputs: tuple[str, ...]  # names of the tensor values it reads
    output: str  # name of the value it produces
    module: nn.Module | None = None
    node: fx.Node | None = None  # its fx node: reshape/meta/mean steps are evaluated from its arguments

    def evaluate(self, values: dict[str, Any]) -> Any:
        """Run this step's fx node on already computed values (pure, out of place, no module called)."""
        node = self.node
        assert node is not None, f"{self.where} has no fx node to evaluate"
        args = fx.node.map_arg(node.args, lambda n: values[n.name])
        kwargs = fx.node.map_arg(node.kwargs, lambda n: values[n.name])
        if node.op == "call_method":
            return getattr(args[0], str(node.target))(*args[1:], **kwargs)
        fn: Callable = node.target  # type: ignore[assignment]
        return fn(*args, **kwargs)


@dataclass(frozen=True)
class Block:
    """A residual block: the steps of its two branches, the main branch (more convs) first."""

    main: frozenset[int]
    skip: frozenset[int]

    @property
    def steps(self) -> frozenset[int]:
        return self.main | self.skip


@dataclass
class Graph:
    """A traced model: steps in execution order, who consumes which value, and the structural
    queries the rules ask (computed once per graph)."""

    steps: list[Step]
    input: str
    output: str
    consumers: dict[str, list[int]]  # value name -> indices of the steps that read it

    def __post_init__(self) -> None:
        self._producers = {s.output: s for s in self.steps}

    def producer(self, value: str) -> Step | None:
        """The step that computes ``value`` (``None`` for the model input)."""
        return self._producers.get(value)

    def source(self, value: str) -> Step | None:
        """The step that really produced ``value``, looking through identity steps (None: the model input)."""
        step = self.producer(value)
        while step is not None and step.kind == StepKind.IDENTITY:
            step = self.producer(step.inputs[0])
        return step

    def reads_input(self, step: Step) -> bool:
        """Whether ``step`` reads the model input (through identity steps at most)."""
        return self.source(step.inputs[0]) is None

    def convs(self) -> list[Step]:
        """Every Conv2d step, in execution order."""
        return [s for s in self.steps if s.kind == StepKind.CONV]

    def classifier_step(self) -> Step:
        """The Linear layer whose outputs are the class scores (identity-like steps after it are allowed)."""
        step = self.source(self.output)
        if step is None or step.kind != StepKind.LINEAR:
            last = "the model input" if step is None else f"{step.where} ({step.kind})"
            raise ProbeValueError(
                f"the model must end in a Linear layer whose outputs are the classes; its output comes from {last}"
            )
        return step

    def flattened_from(self, step: Step) -> str | None:
        """For a step fed by a flatten/view (through identity steps): the value that was flattened."""
        source = self.source(step.inputs[0])
        return source.inputs[0] if source is not None and source.kind == StepKind.RESHAPE else None

    @cached_property
    def _dependencies(self) -> dict[int, frozenset[int]]:
        """For every step, the indices of all steps it depends on (not itself)."""
        anc: dict[int, frozenset[int]] = {}
        for step in self.steps:
            found: set[int] = set()
            for value in step.inputs:
                producer = self.producer(value)
                if producer is not None:
                    found.add(producer.index)
                    found |= anc[producer.index]
            anc[step.index] = frozenset(found)
        return anc

    @cached_property
    def _blocks(self) -> tuple[Block, ...]:
        anc = self._dependencies
        blocks = []
        for step in self.steps:
            if step.kind != StepKind.ADD:
                continue
            sides = []
            for value in step.inputs:
                producer = self.producer(value)
                sides.append(set() if producer is None else set(anc[producer.index]) | {producer.index})
            common = sides[0] & sides[1]
            fork = max(common) if common else -1  # -1: the branches fork at the model input
            branches = [frozenset(s for s in side if s > fork and (fork < 0 or fork in anc[s])) for side in sides]
            convs = [sum(self.steps[s].kind == StepKind.CONV for s in b) for b in branches]
            main, skip = (branches[1], branches[0]) if convs[1] > convs[0] else (branches[0], branches[1])
            blocks.append(Block(main, skip))
        return tuple(blocks)

    def residual_blocks(self) -> tuple[Block, ...]:
        """Every addition of two tensors that fork from a common value, as a :class:`Block`."""
        return self._blocks

    @cached_property
    def _nonnegative(self) -> frozenset[str]:
        found: set[str] = set()
        for step in self.steps:
            row = BY_KIND[step.kind]
            if row.nonnegative or (row.keeps_sign and step.inputs and all(v in found for v in step.inputs)):
                found.add(step.output)
        return frozenset(found)

    def nonnegative_values(self) -> frozenset[str]:
        """Values that are >= 0 by construction: ReLU outputs, and what sign-keeping steps make of them."""
        return self._nonnegative


class _LeafTracer(fx.Tracer):
    """fx tracer that stops at every module the engine knows and at every other torch.nn leaf."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if leaf_kind(m) is not None:
            return True
        return super().is_leaf_module(m, module_qualified_name)


def _location(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return "the model's top-level forward"
    path, kind = list(stack.values())[-1]
    name = getattr(kind, "__name__", str(kind))
    return f"module '{path}' ({name})"


def _op_name(node: fx.Node) -> str:
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    target = node.target
    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__name__", str(target))
    return f"{module}.{name}" if module and module != "_operator" else f"operator.{name}"


def _unsupported_op(node: fx.Node, why: str = "") -> UnsupportedModelError:
    extra = f" ({why})" if why else ""
    return UnsupportedModelError(
        f"attribution has no rule for operation {_op_name(node)} in {_location(node)}{extra}; "
        f"supported: the modules {SUPPORTED_MODULES}, tensor additions, flatten/view/reshape, "
        "functional ReLU, dropout and global average pooling"
    )


def trace(model: nn.Module) -> Graph:
    """Trace ``model`` into a :class:`Graph`; raise :class:`UnsupportedModelError` for anything without a rule."""
    if not isinstance(model, nn.Module):
        raise ProbeTypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    try:
        fx_graph = _LeafTracer().trace(model)
    except UnsupportedModelError:
        raise
    except Exception as exc:  # fx cannot follow data-dependent control flow and the like
        raise UnsupportedModelError(
            f"cannot trace {type(model).__name__} with torch.fx ({type(exc).__name__}: {exc}); "
            "the attribution engine needs a model whose forward is a fixed graph of supported layers"
        ) from exc
    nodes = list(fx_graph.nodes)
    placeholders = [n for n in nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise UnsupportedModelError(
            f"the model's forward must take exactly one input tensor, it takes {len(placeholders)}"
        )
    output_node = next(n for n in nodes if n.op == "output")
    result = output_node.args[0]
    if not isinstance(result, fx.Node):
        raise ProbeValueError("the model must return a single tensor of class scores [N, classes]")

    live = _ancestors(result)
    kinds: dict[str, str] = {placeholders[0].name: "tensor"}  # value name -> "tensor" | "meta"
    steps: list[Step] = []
    for node in nodes:
        if node.op in ("placeholder", "output"):
            continue
        if node not in live:
            if _is_inplace(node, model):
                raise _unsupported_op(node, "an in-place operation whose result is never used")
            continue
        step = _make_step(node, model, kinds, len(steps))
        kinds[node.name] = "meta" if step.kind == StepKind.META else "tensor"
        steps.append(step)
    if kinds.get(result.name) != "tensor":
        raise ProbeValueError("the model must return a single tensor of class scores [N, classes]")
    consumers: dict[str, list[int]] = {}
    for step in steps:
        for value in step.inputs:
            consumers.setdefault(value, []).append(step.index)
    graph = Graph(steps=steps, input=placeholders[0].name, output=result.name, consumers=consumers)
    _check_inplace(graph, nodes, model)
    return graph


def _ancestors(node: fx.Node) -> set[fx.Node]:
    seen: set[fx.Node] = set()
    todo = [node]
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        todo.extend(n.all_input_nodes)
    return seen


def _tensor_args(node: fx.Node, kinds: dict[str, str]) -> list[fx.Node]:
    return [a for a in node.all_input_nodes if kinds.get(a.name) == "tensor"]


def _make_step(node: fx.Node, model: nn.Module, kinds: dict[str, str], index: int) -> Step:
    """The step of one live fx node, its kind looked up in the layer table (``layers.LAYERS``)."""
    if node.op == "call_module":
        return _module_step(node, model, kinds, index)
    if node.op == "get_attr":
        raise UnsupportedModelError(
            f"the model reads the attribute '{node.target}' directly in {_location(node)}; "
            "attribution needs every parameter to be used through a supported module"
        )
    tensors = _tensor_args(node, kinds)
    target = node.target
    if _is_meta(node, bool(tensors)):
        return Step(index, StepKind.META, _location(node), (), node.name, node=node)
    if not tensors:
        raise _unsupported_op(node)
    kind = _FUNCTION_KINDS.get(target) if node.op == "call_function" else _METHOD_KINDS.get(str(target))
    if kind is None:
        raise _unsupported_op(node)
    where = f"{_op_name(node)} in {_location(node)}"
    if BY_KIND[kind].inputs == 2:
        args = [a for a in node.args if isinstance(a, fx.Node)]
        if len(node.args) != 2 or len(args) != 2 or not all(kinds.get(a.name) == "tensor" for a in args):
            raise _unsupported_op(node, "only the sum of two tensors of the same shape has a rule")
        if node.kwargs:
            raise _unsupported_op(node, f"keyword arguments {sorted(node.kwargs)}")
        return Step(index, kind, where, (args[0].name, args[1].name), node.name, node=node)
    if len(tensors) != 1 or not isinstance(node.args[0], fx.Node) or node.args[0] is not tensors[0]:
        raise _unsupported_op(node)
    return Step(index, kind, where, (tensors[0].name,), node.name, node=node)


def _module_step(node: fx.Node, model: nn.Module, kinds: dict[str, str], index: int) -> Step:
    module = model.get_submodule(str(node.target))
    kind = leaf_kind(module)
    if kind is None:
        raise UnsupportedModelError(
            f"attribution has no rule for module '{node.target}' "
            f"({type(module).__module__}.{type(module).__name__}); supported modules: {SUPPORTED_MODULES}"
        )
    tensors = _tensor_args(node, kinds)
    if len(tensors) != 1 or len(node.args) != 1 or node.kwargs:
        raise UnsupportedModelError(f"module '{node.target}' ({type(module).__name__}) must be called with one tensor")
    check = BY_KIND[kind].check
    if check is not None:
        check(str(node.target), module)
    return Step(index, kind, str(node.target), (tensors[0].name,), node.name, module=module, node=node)


def _is_meta(node: fx.Node, reads_tensors: bool) -> bool:
    """Size arithmetic: ``x.size(0)``, ``x.dim()``, ``x.shape``, and sums/products of sizes."""
    if node.op == "call_method":
        return node.target in _META.methods
    if node.op != "call_function":
        return False
    if node.target is getattr:
        return bool(node.args[1] == "shape")
    return not reads_tensors and node.target in _META.functions


def _is_inplace(node: fx.Node, model: nn.Module) -> bool:
    if node.op == "call_module":
        return bool(getattr(model.get_submodule(str(node.target)), "inplace", False))
    if node.op == "call_method":
        return str(node.target).endswith("_")
    if node.op == "call_function":
        if node.target is F.relu and len(node.args) > 1:  # F.relu(x, True)
            return node.args[1] is True
        return node.kwargs.get("inplace", False) is True or node.target in (torch.relu_, F.relu_, operator.iadd)
    return False


def _check_inplace(graph: Graph, nodes: list[fx.Node], model: nn.Module) -> None:
    """An in-place op mutates its input; the engine computes out of place, which is only
    equivalent when nothing reads that input afterwards."""
    order = {n.name: i for i, n in enumerate(nodes)}
    by_name = {n.name: n for n in nodes}
    for step in graph.steps:
        node = by_name[step.output]
        if not step.inputs or not _is_inplace(node, model):
            continue
        mutated = step.inputs[0]
        later = [u for u in by_name[mutated].users if order[u.name] > order[node.name]]
        if later:
            raise UnsupportedModelError(
                f"{step.where} changes its input in place, but '{mutated}' is read again afterwards "
                f"(by {later[0].name}); attribution cannot reproduce that aliasing"
            )
