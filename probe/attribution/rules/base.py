"""Rules every family shares: an out-of-place forward that keeps what the rule needs, and a
backward that maps (relevance, gradient) at the step's output to its inputs.

Every VJP is written by hand (transposed convolutions, per-channel scales, pool backwards), so
the engine never re-runs a layer under autograd. The gradient stream is plain backprop of the
start signal; a rule returns an input gradient only where the engine asks for it. The formulas
are in docs/ATTRIBUTION.md under "The rules"; each rule cites its section by anchor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from probe.errors import ProbeValueError

from ..convops import ConvGeometry, numeric_padding
from ..numerics import EPS, div_eps, sdiv

if TYPE_CHECKING:
    from ..graph import Graph, Step

Tensors = list  # list[Tensor | None]
Values = dict  # value name -> tensor or size


@dataclass
class RuleContext:
    """What a rule factory may read while a composite builds the rules of one traced model."""

    graph: Graph
    dtype: torch.dtype  # the working dtype (the images')
    shapes: dict  # value name -> shape, filled by the engine's forward (for shape-dependent rules)
    settings: Mapping[str, Any]  # the family's numeric settings, e.g. {"residual_eps": 0.01} or {"epsilon": 1e-6}


#: Builds the rule of one step: a rule class's ``build``, or a function choosing among rules.
RuleFactory = Callable[["Step", RuleContext], "Rule"]


class Rule:
    """Base rule: relevance and gradient pass through unchanged (Identity, Dropout at inference).

    ``backward`` may overwrite the relevance it receives (each relevance has one reader), never
    the gradient (an addition hands the same gradient to both of its inputs).
    """

    uses_grad = False  # True when backward needs the gradient at the step's output

    def __init__(self, step: Step, dtype: torch.dtype) -> None:
        self.step = step
        self.dtype = dtype
        self.ctx: dict[str, Any] = {}

    @classmethod
    def build(cls, step: Step, context: RuleContext) -> Rule:
        """The rule of ``step`` in a composite (a rule factory); subclasses read extra arguments from ``context``."""
        return cls(step, context.dtype)

    def param(self, tensor: torch.Tensor | None) -> torch.Tensor | None:
        """A module parameter/buffer as a detached tensor in the working dtype."""
        return None if tensor is None else tensor.detach().to(self.dtype)

    def inputs(self, values: Values) -> list[torch.Tensor]:
        return [values[name] for name in self.step.inputs]

    def forward(self, values: Values) -> torch.Tensor:
        return self.inputs(values)[0]

    def backward(self, r: torch.Tensor, g: torch.Tensor | None, want_grad: list[bool]) -> tuple[Tensors, Tensors]:
        return [r], [g if want_grad[0] else None]

    def start(self, targets: torch.Tensor, want_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """At the classifier: the relevance (and gradient, if ``want_grad``) at its input for class ``targets``."""
        raise NotImplementedError(f"{type(self).__name__} cannot start the propagation")


class MetaRule(Rule):
    """Arithmetic on sizes (``x.size(0)``...): evaluated in the forward, carries no relevance."""

    def forward(self, values: Values) -> Any:
        return self.step.evaluate(values)


class ReshapeRule(Rule):
    """flatten / view / reshape: relevance and gradient are reshaped back."""

    def forward(self, values: Values) -> torch.Tensor:
        x = self.inputs(values)[0]
        self.ctx["shape"] = x.shape
        module = self.step.module
        if isinstance(module, nn.Flatten):  # the only module kind with this rule
            return x.flatten(module.start_dim, module.end_dim)
        return self.step.evaluate(values)

    def backward(self, r, g, want_grad):
        shape = self.ctx.pop("shape")
        return [r.reshape(shape)], [g.reshape(shape) if want_grad[0] else None]


class BatchNormRule(Rule):
    """Inference BatchNorm2d (running statistics): relevance passes unchanged, the gradient is scaled
    per channel (docs/ATTRIBUTION.md#pass-through-layers)."""

    def forward(self, values):
        m = self.step.module
        return F.batch_norm(
            self.inputs(values)[0],
            self.param(m.running_mean),
            self.param(m.running_var),
            self.param(m.weight),
            self.param(m.bias),
            False,
            0.0,
            m.eps,
        )

    def backward(self, r, g, want_grad):
        if not want_grad[0]:
            return [r], [None]
        m = self.step.module
        scale = torch.rsqrt(self.param(m.running_var) + m.eps)
        if m.weight is not None:
            scale = scale * self.param(m.weight)
        return [r], [g * scale.view(1, -1, 1, 1)]


class ReluRule(Rule):
    """z-rule through ReLU (docs/ATTRIBUTION.md#z-rule-layers): relevance survives where the input
    was positive; the gradient is masked."""

    def forward(self, values):
        y = F.relu(self.inputs(values)[0])
        self.ctx["y"] = y
        return y

    def backward(self, r, g, want_grad):
        y = self.ctx.pop("y")
        r_in = r.mul_(y).div_(y + EPS)  # = y * sdiv(r, y): both are 0 where y == 0
        return [r_in], [torch.ops.aten.threshold_backward(g, y, 0) if want_grad[0] else None]


class _PoolRule(Rule):
    """z-rule through a linear or max pool (docs/ATTRIBUTION.md#z-rule-layers): R_in = X * VJP(R / pool(X))."""

    divide = staticmethod(sdiv)

    def backward(self, r, g, want_grad):
        x = self.ctx.pop("x")
        y, vjp = self.pool_with_vjp(x)
        r_in = vjp(self.divide(r, y.view(r.shape))).mul_(x)
        return [r_in], [vjp(g) if want_grad[0] else None]

    def forward(self, values):
        x = self.inputs(values)[0]
        self.ctx["x"] = x
        return self.pool_with_vjp(x)[0]

    def pool_with_vjp(self, x):
        raise NotImplementedError


class MaxPoolRule(_PoolRule):
    # The VJP routes each output to its argmax input, where x == y: x * sdiv(r, y) is 0 there when y == 0.
    divide = staticmethod(div_eps)

    def pool_with_vjp(self, x):
        m = self.step.module
        k, s, p, d = _pair(m.kernel_size), _pair(m.stride), _pair(m.padding), _pair(m.dilation)
        y, idx = F.max_pool2d(x, k, s, p, d, m.ceil_mode, return_indices=True)

        def vjp(grad):
            return torch.ops.aten.max_pool2d_with_indices_backward(grad, x, k, s, p, d, m.ceil_mode, idx)

        return y, vjp


class AvgPoolRule(_PoolRule):
    def pool_with_vjp(self, x):
        m = self.step.module
        k, s, p = _pair(m.kernel_size), _pair(m.stride), _pair(m.padding)
        y = F.avg_pool2d(x, k, s, p, m.ceil_mode, m.count_include_pad, m.divisor_override)

        def vjp(grad):
            return torch.ops.aten.avg_pool2d_backward(
                grad, x, k, s, p, m.ceil_mode, m.count_include_pad, m.divisor_override
            )

        return y, vjp


class AdaptiveAvgPoolRule(_PoolRule):
    """nn.AdaptiveAvgPool2d and F.adaptive_avg_pool2d."""

    def forward(self, values):
        x = self.inputs(values)[0]
        if x.dim() != 4:
            raise ProbeValueError(f"{self.step.where}: expected a 4-D feature map, got shape {tuple(x.shape)}")
        self.ctx["x"] = x
        return self.pooled(x, values)

    def pooled(self, x: torch.Tensor, values: Values) -> torch.Tensor:
        return self.pool_with_vjp(x)[0]

    def output_size(self):
        if self.step.module is not None:
            return self.step.module.output_size
        node = self.step.node
        return node.kwargs["output_size"] if "output_size" in node.kwargs else node.args[1]

    def pool_with_vjp(self, x):
        y = F.adaptive_avg_pool2d(x, self.output_size())

        def vjp(grad):
            return torch.ops.aten._adaptive_avg_pool2d_backward(grad.reshape(y.shape), x)

        return y, vjp


class MeanRule(AdaptiveAvgPoolRule):
    """``x.mean((2, 3))`` (kept dims or not): a pool to 1×1, reshaped as the mean's output."""

    def pooled(self, x, values):
        y = self.step.evaluate(values)
        if y.shape[:2] != x.shape[:2] or y.numel() != x.shape[0] * x.shape[1]:
            raise ProbeValueError(f"{self.step.where}: only a mean over the two spatial dims has a rule")
        return y

    def output_size(self):
        return 1


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


class AddRule(Rule):
    """Residual addition (docs/ATTRIBUTION.md#z-rule-layers): R split in proportion a/(a+b) and
    b/(a+b); both inputs get the gradient.

    Where a and b nearly cancel, a/(a+b) explodes and the two branches receive huge relevances of
    opposite sign that never cancel again (isolated spikes in the map). ``stabilizer`` = eps pushes the
    denominator away from 0 by eps * (|a| + |b|), with its sign; 0 is the published rule.
    """

    def __init__(self, step: Step, dtype: torch.dtype, stabilizer: float = 0.0) -> None:
        super().__init__(step, dtype)
        self.stabilizer = stabilizer

    @classmethod
    def build(cls, step: Step, context: RuleContext) -> Rule:
        return cls(step, context.dtype, context.settings.get("residual_eps", 0.0))

    def forward(self, values):
        a, b = self.inputs(values)
        if a.shape != b.shape:
            raise ProbeValueError(
                f"{self.step.where}: attribution needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}"
            )
        self.ctx["ab"] = (a, b)
        return a + b

    def backward(self, r, g, want_grad):
        a, b = self.ctx.pop("ab")
        z = a + b
        if self.stabilizer:
            z = z + self.stabilizer * (a.abs() + b.abs()) * torch.where(z >= 0, 1.0, -1.0)
        s = sdiv(r, z)
        return [a * s, b * s], [g if want_grad[0] else None, g if want_grad[1] else None]


class ConvRule(Rule):
    """Conv2d machinery every conv rule shares: the weights in the working dtype, the geometry, the forward."""

    def __init__(self, step: Step, dtype: torch.dtype, nonneg: bool = False) -> None:
        super().__init__(step, dtype)
        self.nonneg = nonneg  # the input is known to be >= 0 (it comes from a ReLU), so |x| = x
        m = cast(nn.Conv2d, step.module)
        self.weight: torch.Tensor = m.weight.detach().to(dtype)
        self.bias = self.param(m.bias)
        self.geom = ConvGeometry(m, numeric_padding(m))

    def forward(self, values):
        x = self.inputs(values)[0]
        self.ctx["x"] = x
        return self.geom.conv(x, self.weight, self.bias)


class BoundedConvRule(ConvRule):
    """z^B rule for the conv that reads the image (docs/ATTRIBUTION.md#bounded-first-conv-rule), with
    per-sample global bounds lo/hi. AGF and LRP both use it."""

    def backward(self, r, g, want_grad):
        x = self.ctx.pop("x")
        w, geom = self.weight, self.geom
        w_pos, w_neg = w.clamp(min=0), w.clamp(max=0)
        lo = x.flatten(1).amin(1).view(-1, 1, 1, 1)
        hi = x.flatten(1).amax(1).view(-1, 1, 1, 1)
        k = w.shape[0]
        bound = geom.ones_conv(torch.cat((w_pos, w_neg)), x.shape)
        z = geom.conv(x, w) - lo * bound[:, :k] - hi * bound[:, k:]
        s = sdiv(r, z)
        if geom.groups == 1:
            c = x.shape[1]
            back = geom.conv_t(s, torch.cat((w, w_pos, w_neg), dim=1), (x.shape[0], 3 * c) + tuple(x.shape[2:]))
            t_w, t_pos, t_neg = back[:, :c], back[:, c : 2 * c], back[:, 2 * c :]
        else:
            t_w, t_pos, t_neg = (geom.conv_t(s, v, x.shape) for v in (w, w_pos, w_neg))
        r_in = x * t_w - lo * t_pos - hi * t_neg
        return [r_in], [None]


class LinearRule(Rule):
    """Linear machinery every linear rule shares: the weights in the working dtype and the forward on [N, features]."""

    def __init__(self, step: Step, dtype: torch.dtype) -> None:
        super().__init__(step, dtype)
        m = cast(nn.Linear, step.module)
        self.weight: torch.Tensor = m.weight.detach().to(dtype)
        self.bias = self.param(m.bias)

    def forward(self, values):
        x = self.inputs(values)[0]
        if x.dim() != 2:
            raise ProbeValueError(
                f"Linear '{self.step.where}': attribution needs a 2-D input [N, features], got shape {tuple(x.shape)}"
            )
        self.ctx["x"] = x
        return F.linear(x, self.weight, self.bias)
