"""Rules of our LRP composite (Captum's LRP rejects modules called twice, such as torchvision's
shared ReLU in ResNet blocks, and does not split relevance at functional residual additions).

z+ on convs with a following BatchNorm folded in, epsilon on Linear layers, relevance passes
unchanged through ReLU; the z^B first conv, pools and additions use the shared z-rules of ``base``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..numerics import sdiv
from .base import BoundedConvRule, ConvRule, LinearRule, Rule, RuleContext

if TYPE_CHECKING:
    from ..graph import Graph, Step


def _stabilise(z: torch.Tensor, epsilon: float) -> torch.Tensor:
    """z + epsilon * sign(z), with sign(0) = +1."""
    return z + torch.where(z >= 0, epsilon, -epsilon)


class PassThroughRule(Rule):
    """ReLU under LRP: relevance is passed on unchanged."""

    def forward(self, values):
        return F.relu(self.inputs(values)[0])


class ZPlusConvRule(ConvRule):
    """z+ (alpha=1, beta=0): only positive contributions x_i w_ij > 0 share the relevance.

    A BatchNorm2d that alone reads the conv is folded in: its per-channel scale only rescales
    each output channel (which z+ ignores), except that a negative scale swaps w+ and w-.
    """

    def __init__(self, step: Step, dtype: torch.dtype, batchnorm: nn.BatchNorm2d | None) -> None:
        super().__init__(step, dtype)
        w = self.weight
        if batchnorm is not None and batchnorm.weight is not None:
            flip = (batchnorm.weight.detach() < 0).to(w.device)
            w = torch.where(flip.view(-1, 1, 1, 1), -w, w)
        self.w_pos, self.w_neg = w.clamp(min=0), w.clamp(max=0)

    @classmethod
    def build(cls, step: Step, context: RuleContext) -> Rule:
        return cls(step, context.dtype, folded_batchnorm(context.graph, step))

    def backward(self, r, g, want_grad):
        x = self.ctx.pop("x")
        x_pos = x.clamp(min=0)
        geom = self.geom
        z = geom.conv(x_pos, self.w_pos)
        negative = bool((x < 0).any())
        if negative:
            x_neg = x.clamp(max=0)
            z = z + geom.conv(x_neg, self.w_neg)
        s = sdiv(r, z)
        r_in = geom.conv_t(s, self.w_pos, x.shape).mul_(x_pos)
        if negative:
            r_in += geom.conv_t(s, self.w_neg, x.shape).mul_(x_neg)
        return [r_in], [None]


class EpsilonLinearRule(LinearRule):
    """LRP-epsilon: R_in = x * (W^T (R / (z + eps sign z)))."""

    def __init__(self, step: Step, dtype: torch.dtype, epsilon: float) -> None:
        super().__init__(step, dtype)
        self.epsilon = epsilon

    @classmethod
    def build(cls, step: Step, context: RuleContext) -> Rule:
        return cls(step, context.dtype, context.settings["epsilon"])

    def backward(self, r, g, want_grad):
        x = self.ctx.pop("x")
        z = F.linear(x, self.weight, self.bias)
        return [torch.mm(r / _stabilise(z, self.epsilon), self.weight).mul_(x)], [None]


class LrpStartRule(EpsilonLinearRule):
    """The classifier under LRP: the target logit is the initial relevance, then the epsilon rule."""

    def start(self, targets: torch.Tensor, want_grad: bool):
        x = self.ctx["x"]
        logits = F.linear(x, self.weight, self.bias)
        r = torch.zeros_like(logits).scatter_(1, targets.view(-1, 1), logits.gather(1, targets.view(-1, 1)))
        return self.backward(r, None, [False])[0][0], None


def conv_by_place(step: Step, context: RuleContext) -> Rule:
    """z^B on the conv that reads the model input, z+ (with its BatchNorm folded in) on every other."""
    if context.graph.reads_input(step):
        return BoundedConvRule.build(step, context)
    return ZPlusConvRule.build(step, context)


def folded_batchnorm(graph: Graph, step: Step) -> nn.BatchNorm2d | None:
    """The BatchNorm2d that alone reads this conv's output (folded into the conv for LRP), if any."""
    readers = graph.consumers.get(step.output, [])
    if len(readers) == 1 and graph.steps[readers[0]].kind == "batchnorm":
        module = graph.steps[readers[0]].module
        if not isinstance(module, nn.BatchNorm2d):
            raise RuntimeError(f"batchnorm step {graph.steps[readers[0]].output!r} holds {type(module).__name__}")
        return module
    return None
