"""Propagation rules, one per step kind: an out-of-place forward that keeps what the rule needs,
and a backward that maps (relevance, gradient) at the output to the inputs.

Every VJP is written by hand (transposed convolutions, per-channel scales, pool backwards), so
the engine never re-runs a layer under autograd. The gradient stream is plain backprop of the
AGF start signal p_t; a rule returns an input gradient only where the engine asks for it.
Formulas follow /work/shared/docs/agf-spec.md (sections in the docstrings).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from probe.errors import ProbeValueError

from .convops import ConvGeometry, numeric_padding
from .factorization import factorize, regions
from .graph import Step, evaluate_node
from .numerics import EPS, delta_shift, div_eps, max_per_sample, sdiv

Tensors = list  # list[Tensor | None]
Values = dict  # value name -> tensor or size


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

    def param(self, tensor: torch.Tensor | None) -> torch.Tensor | None:
        """A module parameter/buffer as a detached tensor in the working dtype."""
        return None if tensor is None else tensor.detach().to(self.dtype)

    def inputs(self, values: Values) -> list[torch.Tensor]:
        return [values[name] for name in self.step.inputs]

    def forward(self, values: Values) -> torch.Tensor:
        return self.inputs(values)[0]

    def backward(self, r: torch.Tensor, g: torch.Tensor | None, want_grad: list[bool]) -> tuple[Tensors, Tensors]:
        return [r], [g if want_grad[0] else None]


class MetaRule(Rule):
    """Arithmetic on sizes (``x.size(0)``...): evaluated in the forward, carries no relevance."""

    def forward(self, values: Values) -> Any:
        return evaluate_node(self.step.node, values)


class ReshapeRule(Rule):
    """flatten / view / reshape: relevance and gradient are reshaped back."""

    def forward(self, values: Values) -> torch.Tensor:
        x = self.inputs(values)[0]
        self.ctx["shape"] = x.shape
        module = self.step.module
        if module is not None:  # nn.Flatten
            return x.flatten(module.start_dim, module.end_dim)
        return evaluate_node(self.step.node, values)

    def backward(self, r, g, want_grad):
        shape = self.ctx.pop("shape")
        return [r.reshape(shape)], [g.reshape(shape) if want_grad[0] else None]


class BatchNormRule(Rule):
    """Inference BatchNorm2d (running statistics): relevance passes unchanged, the gradient is scaled per channel (5.1)."""

    def forward(self, values):
        m = self.step.module
        return F.batch_norm(
            self.inputs(values)[0], self.param(m.running_mean), self.param(m.running_var),
            self.param(m.weight), self.param(m.bias), False, 0.0, m.eps,
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
    """z-rule through ReLU (5.2): relevance survives where the input was positive; the gradient is masked."""

    def forward(self, values):
        y = F.relu(self.inputs(values)[0])
        self.ctx["y"] = y
        return y

    def backward(self, r, g, want_grad):
        y = self.ctx.pop("y")
        r_in = r.mul_(y).div_(y + EPS)  # = y * sdiv(r, y): both are 0 where y == 0
        return [r_in], [torch.ops.aten.threshold_backward(g, y, 0) if want_grad[0] else None]


class _PoolRule(Rule):
    """z-rule through a linear or max pool (5.2): R_in = X * VJP(R / pool(X))."""

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
    """nn.AdaptiveAvgPool2d, F.adaptive_avg_pool2d, and ``x.mean((2, 3))`` (as a pool to 1×1 plus a reshape)."""

    def forward(self, values):
        x = self.inputs(values)[0]
        if x.dim() != 4:
            raise ProbeValueError(f"{self.step.where}: expected a 4-D feature map, got shape {tuple(x.shape)}")
        self.ctx["x"] = x
        if self.step.kind != "mean":
            return self.pool_with_vjp(x)[0]
        y = evaluate_node(self.step.node, values)
        if y.shape[:2] != x.shape[:2] or y.numel() != x.shape[0] * x.shape[1]:
            raise ProbeValueError(f"{self.step.where}: only a mean over the two spatial dims has a rule")
        return y

    def output_size(self):
        if self.step.module is not None:
            return self.step.module.output_size
        if self.step.kind == "mean":
            return 1
        node = self.step.node
        return node.kwargs["output_size"] if "output_size" in node.kwargs else node.args[1]

    def pool_with_vjp(self, x):
        y = F.adaptive_avg_pool2d(x, self.output_size())

        def vjp(grad):
            return torch.ops.aten._adaptive_avg_pool2d_backward(grad.reshape(y.shape), x)

        return y, vjp


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


class AddRule(Rule):
    """Residual addition (5.2): R split in proportion a/(a+b) and b/(a+b); both inputs get the gradient.

    Where a and b nearly cancel, a/(a+b) explodes and the two branches receive huge relevances of
    opposite sign that never cancel again (isolated spikes in the map). ``stabilizer`` = eps pushes the
    denominator away from 0 by eps * (|a| + |b|), with its sign; 0 is the published rule.
    """

    def __init__(self, step: Step, dtype: torch.dtype, stabilizer: float = 0.0) -> None:
        super().__init__(step, dtype)
        self.stabilizer = stabilizer

    def forward(self, values):
        a, b = self.inputs(values)
        if a.shape != b.shape:
            raise ProbeValueError(f"{self.step.where}: attribution needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
        self.ctx["ab"] = (a, b)
        return a + b

    def backward(self, r, g, want_grad):
        a, b = self.ctx.pop("ab")
        z = a + b
        if self.stabilizer:
            z = z + self.stabilizer * (a.abs() + b.abs()) * torch.where(z >= 0, 1.0, -1.0)
        s = sdiv(r, z)
        return [a * s, b * s], [g if want_grad[0] else None, g if want_grad[1] else None]


class _ConvRule(Rule):
    """Shared Conv2d machinery: the forward, and the |x||w| z-rule used by every AGF conv rule."""

    def __init__(self, step: Step, dtype: torch.dtype, nonneg: bool = False) -> None:
        super().__init__(step, dtype)
        self.nonneg = nonneg  # the input is known to be >= 0 (it comes from a ReLU), so |x| = x
        m = step.module
        self.weight = self.param(m.weight)
        self.bias = self.param(m.bias)
        self.geom = ConvGeometry(m, numeric_padding(step.where, m))

    def forward(self, values):
        x = self.inputs(values)[0]
        self.ctx["x"] = x
        return self.geom.conv(x, self.weight, self.bias)

    def c_rule(self, x, r, abs_w, extra_denominator=None):
        """The |x||w| z-rule: C = |X| * convT(R / conv(|X|, |W|), |W|) (5.5 step 3).

        Z = conv(|X|, |W|) is 0 only where every product |x||w| of the window is 0, and each such
        product multiplies S in C, so dividing without the zero mask gives the same C.
        With ``extra_denominator`` D, convT(R / (D + 1e-9), |W|) is computed in the same call
        (batched) and returned second.
        """
        abs_x = x if self.nonneg else x.abs()
        z = self.geom.conv(abs_x, abs_w)
        if extra_denominator is None:
            s = torch.div(r, z.add_(EPS), out=z)
            return self.geom.conv_t(s, abs_w, x.shape).mul_(abs_x), None
        n = x.shape[0]
        quotients = r.new_empty((2 * n,) + tuple(r.shape[1:]))
        torch.div(r, z.add_(EPS), out=quotients[:n])
        del z
        torch.div(r, extra_denominator + EPS, out=quotients[n:])
        both = self.geom.conv_t(quotients, abs_w, x.shape)
        del quotients
        return both[:n] * abs_x, both[n:]


class AgfConvRule(_ConvRule):
    """Full AGF conv rule (5.5): C, plus the residual from M, F_x, F_dx and A, delta-shifted onto C's support."""

    uses_grad = True

    def backward(self, r, g, want_grad):
        x = self.ctx.pop("x")
        w, geom = self.weight, self.geom
        abs_w = w.abs()
        grad_in = geom.conv_t(g, w, x.shape)
        m_map = F.relu((x * grad_in).mean(1, keepdim=True))
        m_map = sdiv(m_map, max_per_sample(m_map))
        # The masked gradient convT(G * 1[R != 0], W): usually G is already zero wherever R is (both
        # die at the same ReLU), and then it is grad_in.
        r_zero = r == 0
        if r_zero.logical_and_(g != 0).any():
            grad_masked = geom.conv_t(torch.where(r != 0, g, 0), w, x.shape)
        else:
            grad_masked = grad_in
        del r_zero

        # A = convT(R / conv(1, |W|), |W|) rides along with C's transposed conv. conv(1, |W|) is 0
        # only for an all-zero kernel, whose A is 0 anyway.
        c, residual = self.c_rule(x, r, abs_w, extra_denominator=geom.ones_conv(abs_w, x.shape))
        cols = regions(c.mean(1, keepdim=True))
        f_dx = factorize(grad_masked, cols)
        del grad_masked
        f_x = factorize(x, cols)
        # residual = A + sdiv(F_x + M, 1 + exp(-C)) + F_dx; (F_x + M) * sigmoid(C) equals that sdiv
        # up to its 1e-9, which is below float32 resolution there
        residual.addcmul_(torch.sigmoid(c), f_x + m_map).add_(f_dx)
        off_support = c == 0
        residual.masked_fill_(off_support, 0)
        return [delta_shift(c, residual, off_support)], [grad_in if want_grad[0] else None]


class FlatConvRule(_ConvRule):
    """C-only conv rule (5.7, the published ``flat=True``): only the |x||w| z-rule, plus the gradient."""

    def backward(self, r, g, want_grad):
        x = self.ctx.pop("x")
        c = self.c_rule(x, r, self.weight.abs())[0]
        return [c], [self.geom.conv_t(g, self.weight, x.shape) if want_grad[0] else None]


class BoundedConvRule(_ConvRule):
    """z^B rule for the conv that reads the image (5.8), with per-sample global bounds lo/hi."""

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


class _LinearRule(Rule):
    def __init__(self, step: Step, dtype: torch.dtype) -> None:
        super().__init__(step, dtype)
        self.weight = self.param(step.module.weight)
        self.bias = self.param(step.module.bias)

    def forward(self, values):
        x = self.inputs(values)[0]
        if x.dim() != 2:
            raise ProbeValueError(f"Linear '{self.step.where}': attribution needs a 2-D input [N, features], got shape {tuple(x.shape)}")
        self.ctx["x"] = x
        return F.linear(x, self.weight, self.bias)


class AgfLinearRule(_LinearRule):
    """A Linear that is not the classifier (5.4): C, plus M when its input is a flattened 4-D map."""

    def __init__(self, step: Step, dtype: torch.dtype, source: str | None, shapes: dict) -> None:
        super().__init__(step, dtype)
        self.source = source  # the value a flatten/view turned into this Linear's input, if any
        self.shapes = shapes  # value name -> shape, filled by the engine's forward
        self.unflattened: tuple[int, ...] | None = None

    def forward(self, values):
        y = super().forward(values)
        shape = self.shapes.get(self.source) if self.source is not None else None
        self.unflattened = tuple(shape) if shape is not None and len(shape) == 4 else None
        self.uses_grad = self.unflattened is not None
        return y

    def backward(self, r, g, want_grad):
        x = self.ctx.pop("x")
        with_grad = g is not None and (want_grad[0] or self.uses_grad)
        c, grad_in = self._c_and_grad(x, r, g if with_grad else None)
        if self.uses_grad:
            shape = self.unflattened
            m_map = (x.view(shape) * grad_in.view(shape)).mean(1, keepdim=True).expand(shape).reshape(x.shape)
            off_support = c == 0
            m_map = F.relu(m_map).masked_fill_(off_support, 0)
            m_map = sdiv(m_map, max_per_sample(m_map))
            c = delta_shift(c, m_map, off_support)
        return [c], [grad_in if want_grad[0] else None]

    def _c_and_grad(self, x, r, g):
        """C = |x| * ((R / (|x| |W|^T)) |W|) and, if ``g`` is given, g W, in one pass over W by blocks of
        rows: |W| is never materialised whole (VGG's first classifier layer has 100M weights).

        A zero denominator means every product |x_i||w_ji| is zero, and each multiplies S_j in C,
        so the quotient needs no zero mask.
        """
        abs_x = x.abs()
        total = torch.zeros_like(x)
        grad_in = torch.zeros_like(x) if g is not None else None
        rows = max(1, (1 << 24) // x.shape[1])  # blocks of 64 MiB in float32
        for start in range(0, self.weight.shape[0], rows):
            w = self.weight[start : start + rows]
            abs_w = w.abs()
            z = torch.mm(abs_x, abs_w.t())
            total.addmm_(torch.div(r[:, start : start + rows], z.add_(EPS), out=z), abs_w)
            if g is not None:
                grad_in.addmm_(g[:, start : start + rows], w)
        return total.mul_(abs_x), grad_in


class AgfStartRule(_LinearRule):
    """The classifier Linear (section 4): R = x * dp_t/dx with the gaussian-contrast softmax p; g = dp_t/dx."""

    def start(self, targets: torch.Tensor, want_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.ctx.pop("x")
        with torch.enable_grad():
            # float64 and p_t = sigmoid(u), u = z_t - logsumexp_{j != t} z_j: the same dp_t/dx without the
            # 1 - p_t that rounds to 0 once a confident head saturates the softmax (an all-zero map).
            xr = x.detach().double().requires_grad_(True)
            y = F.linear(xr, self.weight.double(), None if self.bias is None else self.bias.double())
            t = targets.view(-1, 1)
            y_t = y.gather(1, t)
            diff = y - y_t
            sigma = diff.abs().max(dim=1, keepdim=True)[0]
            sigma = torch.where(sigma == 0, torch.ones_like(sigma), sigma)  # all logits equal: p is flat, g = 0
            z = y_t * torch.exp(-0.5 * (diff / sigma) ** 2)
            u = z.gather(1, t) - z.scatter(1, t, float("-inf")).logsumexp(dim=1, keepdim=True)
            dp_du = (torch.sigmoid(u) * torch.sigmoid(-u)).detach()
            (grad,) = torch.autograd.grad(u, xr, grad_outputs=dp_du)
        grad = grad.to(x.dtype)
        return x * grad, (grad if want_grad else None)
