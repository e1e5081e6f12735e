"""AGF's own rules: the full and C-only conv rules, inner Linear layers, the start signal at the
classifier (docs/ATTRIBUTION.md#the-rules), and which rule each conv gets
(docs/ATTRIBUTION.md#which-rule-each-convolution-gets)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..factorization import factorize, regions
from ..numerics import EPS, delta_shift, max_per_sample, sdiv
from .base import BoundedConvRule, ConvRule, LinearRule, Rule, RuleContext

if TYPE_CHECKING:
    from ..graph import Graph, Step


class _AbsConvRule(ConvRule):
    """A conv rule built on the |x||w| z-rule C."""

    def c_rule(self, x, r, abs_w, extra_denominator=None):
        """The |x||w| z-rule: C = |X| * convT(R / conv(|X|, |W|), |W|) (docs/ATTRIBUTION.md#full-conv-rule, step 3).

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


class AgfConvRule(_AbsConvRule):
    """Full AGF conv rule (docs/ATTRIBUTION.md#full-conv-rule): C, plus the residual from M, F_x,
    F_dx and A, delta-shifted onto C's support."""

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


class FlatConvRule(_AbsConvRule):
    """C-only conv rule (docs/ATTRIBUTION.md#c-only-conv-rule, the published ``flat=True``): the
    |x||w| z-rule, plus the gradient."""

    def backward(self, r, g, want_grad):
        x = self.ctx.pop("x")
        c = self.c_rule(x, r, self.weight.abs())[0]
        return [c], [self.geom.conv_t(g, self.weight, x.shape) if want_grad[0] else None]


class AgfLinearRule(LinearRule):
    """A Linear that is not the classifier (docs/ATTRIBUTION.md#inner-linear-layers): C, plus M when
    its input is a flattened 4-D map."""

    def __init__(self, step: Step, dtype: torch.dtype, source: str | None, shapes: dict) -> None:
        super().__init__(step, dtype)
        self.source = source  # the value a flatten/view turned into this Linear's input, if any
        self.shapes = shapes  # value name -> shape, filled by the engine's forward
        self.unflattened: tuple[int, ...] | None = None

    @classmethod
    def build(cls, step: Step, context: RuleContext) -> Rule:
        return cls(step, context.dtype, context.graph.flattened_from(step), context.shapes)

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


class AgfStartRule(LinearRule):
    """The classifier Linear (docs/ATTRIBUTION.md#the-start-signal): R = x * dp_t/dx with the
    gaussian-contrast softmax p; g = dp_t/dx."""

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


#: The AGF conv rules by name, as ``explain(..., composite={path: name})`` and ``conv_rules`` spell them.
CONV_RULES: dict[str, type[ConvRule]] = {"full": AgfConvRule, "flat": FlatConvRule, "zb": BoundedConvRule}


def conv_mode(graph: Graph, step: Step) -> str:
    """The AGF rule of a conv by its place in the model (the published ResNet and VGG choices,
    and for BasicBlock the assignment that mirrors Bottleneck):

    - ``zb``: a conv that reads the model input;
    - inside a residual block: ``full`` for the first conv of the main branch with a kernel larger
      than 1×1, ``flat`` for every other conv of the block (1×1 convs, the second 3×3 of a
      BasicBlock, downsample convs);
    - every other conv (VGG's features): ``full``.
    """
    if graph.reads_input(step):
        return "zb"
    inside = [b for b in graph.residual_blocks() if step.index in b.steps]
    if not inside:
        return "full"
    block = min(inside, key=lambda b: len(b.steps))
    wide = [s for s in sorted(block.main) if graph.steps[s].kind == "conv" and _kernel_area(graph.steps[s]) > 1]
    return "full" if wide and wide[0] == step.index else "flat"


def _kernel_area(step: Step) -> int:
    kh, kw = cast(nn.Conv2d, step.module).kernel_size
    return kh * kw


def conv_rule(mode: str):
    """The rule factory of the AGF conv rule called ``mode``."""

    def build(step: Step, context: RuleContext) -> Rule:
        return CONV_RULES[mode](step, context.dtype, nonneg=step.inputs[0] in context.graph.nonnegative_values())

    return build


def conv_by_place(step: Step, context: RuleContext) -> Rule:
    """The AGF conv rule that :func:`conv_mode` assigns."""
    return conv_rule(conv_mode(context.graph, step))(step, context)
