"""Trace an unmodified model into the ordered list of steps the attribution engine walks.

``torch.fx`` only *reads* the model: known leaf modules become one step each, supported
functions/methods (additions, flatten/view, functional ReLU, mean over H×W, ...) become
steps too, and anything else raises :class:`UnsupportedModelError` naming the module
path and type. The user's modules are never called by the engine and never modified.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from probe.errors import ProbeTypeError, ProbeValueError


class UnsupportedModelError(ProbeTypeError):
    """The model contains a module or operation that the attribution engine has no rule for."""


# Module types with a rule, by step kind. A subclass counts only if it keeps the base forward.
LEAF_KINDS: dict[type[nn.Module], str] = {
    nn.Conv2d: "conv",
    nn.BatchNorm2d: "batchnorm",
    nn.ReLU: "relu",
    nn.MaxPool2d: "maxpool",
    nn.AvgPool2d: "avgpool",
    nn.AdaptiveAvgPool2d: "adaptive_avgpool",
    nn.Flatten: "reshape",
    nn.Dropout: "identity",
    nn.Dropout1d: "identity",
    nn.Dropout2d: "identity",
    nn.Dropout3d: "identity",
    nn.Identity: "identity",
    nn.Linear: "linear",
}
SUPPORTED_MODULES = ", ".join(sorted({t.__name__ for t in LEAF_KINDS}))

_RELU_FUNCS = {F.relu, torch.relu, torch.relu_, F.relu_}
_ADD_FUNCS = {operator.add, operator.iadd, torch.add}
_RESHAPE_FUNCS = {torch.flatten, torch.reshape}
_RESHAPE_METHODS = {"flatten", "view", "reshape"}
_IDENTITY_METHODS = {"contiguous"}
_META_METHODS = {"size", "dim"}
_META_FUNCS = {operator.getitem, operator.mul, operator.floordiv, operator.add, operator.sub}


def leaf_kind(module: nn.Module) -> str | None:
    """The step kind of a module the engine has a rule for, or ``None``."""
    for base, kind in LEAF_KINDS.items():
        if isinstance(module, base) and type(module).forward is base.forward:
            return kind
    return None


@dataclass
class Step:
    """One operation of the traced model: what it is, where it is, which values it reads and writes."""

    index: int
    kind: str  # conv, batchnorm, relu, maxpool, avgpool, adaptive_avgpool, mean, linear, add, reshape, identity, meta
    where: str  # module path, or "<op> in <module path>"
    inputs: tuple[str, ...]  # names of the tensor values it reads
    output: str  # name of the value it produces
    module: nn.Module | None = None
    node: fx.Node | None = None  # kept for reshape/meta/mean steps, which are evaluated from their fx arguments
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Graph:
    """A traced model: steps in execution order, plus who consumes which value."""

    steps: list[Step]
    input: str
    output: str
    consumers: dict[str, list[int]]  # value name -> indices of the steps that read it

    def producer(self, value: str) -> Step | None:
        """The step that computes ``value`` (``None`` for the model input)."""
        return self._producers.get(value)

    def __post_init__(self) -> None:
        self._producers = {s.output: s for s in self.steps}

    def convs(self) -> list[Step]:
        """Every Conv2d step, in execution order."""
        return [s for s in self.steps if s.kind == "conv"]


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
        raise UnsupportedModelError(f"the model's forward must take exactly one input tensor, it takes {len(placeholders)}")
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
        kinds[node.name] = "meta" if step.kind == "meta" else "tensor"
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
    tensors = _tensor_args(node, kinds)
    names = tuple(a.name for a in tensors)
    where = _location(node)
    if node.op == "call_module":
        module = model.get_submodule(node.target)
        kind = leaf_kind(module)
        if kind is None:
            raise UnsupportedModelError(
                f"attribution has no rule for module '{node.target}' ({type(module).__module__}.{type(module).__name__}); "
                f"supported modules: {SUPPORTED_MODULES}"
            )
        if len(tensors) != 1 or len(node.args) != 1 or node.kwargs:
            raise UnsupportedModelError(f"module '{node.target}' ({type(module).__name__}) must be called with one tensor")
        _check_module(node.target, module)
        return Step(index, kind, str(node.target), names, node.name, module=module, node=node)
    if node.op == "get_attr":
        raise UnsupportedModelError(
            f"the model reads the attribute '{node.target}' directly in {where}; "
            "attribution needs every parameter to be used through a supported module"
        )
    if not tensors:  # arithmetic on sizes, e.g. x.view(x.size(0), -1)
        if (node.op == "call_method" and node.target in _META_METHODS) or (
            node.op == "call_function" and node.target in _META_FUNCS
        ):
            return Step(index, "meta", where, (), node.name, node=node)
        raise _unsupported_op(node)
    target = node.target
    op = _op_name(node)
    if node.op == "call_method" and target in _META_METHODS or (
        node.op == "call_function" and target is getattr and node.args[1] == "shape"
    ):
        return Step(index, "meta", where, (), node.name, node=node, options={"reads": names})
    if node.op == "call_function" and target in _ADD_FUNCS or (node.op == "call_method" and target in ("add", "add_")):
        args = list(node.args)
        if len(args) != 2 or not all(isinstance(a, fx.Node) and kinds.get(a.name) == "tensor" for a in args):
            raise _unsupported_op(node, "only the sum of two tensors of the same shape has a rule")
        if node.kwargs:
            raise _unsupported_op(node, f"keyword arguments {sorted(node.kwargs)}")
        return Step(index, "add", f"{op} in {where}", (args[0].name, args[1].name), node.name, node=node)
    if len(tensors) != 1 or not isinstance(node.args[0], fx.Node) or node.args[0] is not tensors[0]:
        raise _unsupported_op(node)
    if node.op == "call_function" and target in _RELU_FUNCS or (node.op == "call_method" and target in ("relu", "relu_")):
        return Step(index, "relu", f"{op} in {where}", names, node.name, node=node)
    if node.op == "call_function" and target in _RESHAPE_FUNCS or (node.op == "call_method" and target in _RESHAPE_METHODS):
        return Step(index, "reshape", f"{op} in {where}", names, node.name, node=node)
    if node.op == "call_method" and target in _IDENTITY_METHODS:
        return Step(index, "identity", f"{op} in {where}", names, node.name, node=node)
    if node.op == "call_function" and target is F.dropout:
        return Step(index, "identity", f"{op} in {where}", names, node.name, node=node)
    if node.op == "call_function" and target is F.adaptive_avg_pool2d:
        return Step(index, "adaptive_avgpool", f"{op} in {where}", names, node.name, node=node)
    if (node.op == "call_method" and target == "mean") or (node.op == "call_function" and target is torch.mean):
        return Step(index, "mean", f"{op} in {where}", names, node.name, node=node)
    raise _unsupported_op(node)


def _check_module(path: str, module: nn.Module) -> None:
    if isinstance(module, nn.Conv2d) and module.padding_mode != "zeros":
        raise UnsupportedModelError(
            f"Conv2d '{path}' uses padding_mode={module.padding_mode!r}; attribution supports zero padding only"
        )
    if isinstance(module, nn.MaxPool2d) and module.return_indices:
        raise UnsupportedModelError(f"MaxPool2d '{path}' returns indices; attribution needs a plain tensor output")
    if isinstance(module, nn.BatchNorm2d) and (module.running_mean is None or module.running_var is None):
        raise UnsupportedModelError(
            f"BatchNorm2d '{path}' keeps no running statistics, so its output depends on the whole batch; "
            "attribution needs per-image inference semantics"
        )


def _is_inplace(node: fx.Node, model: nn.Module) -> bool:
    if node.op == "call_module":
        return bool(getattr(model.get_submodule(node.target), "inplace", False))
    if node.op == "call_method":
        return str(node.target).endswith("_")
    if node.op == "call_function":
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


def evaluate_node(node: fx.Node, values: dict[str, Any]) -> Any:
    """Run a reshape/meta/mean fx node on already computed values (pure, out-of-place, no module called)."""
    args = fx.node.map_arg(node.args, lambda n: values[n.name])
    kwargs = fx.node.map_arg(node.kwargs, lambda n: values[n.name])
    if node.op == "call_method":
        return getattr(args[0], str(node.target))(*args[1:], **kwargs)
    fn: Callable = node.target  # type: ignore[assignment]
    return fn(*args, **kwargs)
