"""Each fast rule equals a literal, autograd-based transcription of docs/ATTRIBUTION.md#the-rules (float64),
over conv geometries the reference fixture does not cover (groups, strides, dilation, 1×1,
non-square maps) and both gradient-mask cases."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from probe.attribution.graph import Step
from probe.attribution.layers import leaf_kind
from probe.attribution.rules import agf, base


@pytest.fixture(autouse=True)
def _float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


# ---- literal transcription of the spec (slow, autograd per term) ----
def sdiv(a, b):
    den = b.clamp(min=1e-9) + b.clamp(max=1e-9)
    den = den + den.eq(0).to(den.dtype) * 1e-9
    return a / den * b.ne(0).to(b.dtype)


def max_ps(x):
    y = x
    for d in range(1, x.dim()):
        y = y.max(dim=d, keepdim=True)[0]
    return y


def delta_shift(c, r):
    nz = c.ne(0).to(c.dtype)
    dims = list(range(1, c.dim()))
    return c + r - r.sum(dims, keepdim=True) / nz.sum(dims, keepdim=True) * nz


def grad(y, x, v):
    return torch.autograd.grad(y, x, v, retain_graph=True)[0]


def literal_factorization(x, g, phi):
    pos, neg = phi.clamp(min=0).ne(0).double(), phi.clamp(max=0).ne(0).double()
    out = []
    for v in (sdiv(g, max_ps(g)), sdiv(x, max_ps(x))):
        h = torch.sigmoid(10 * v)
        r_pos = sdiv((h * pos).sum((2, 3), keepdim=True), pos.sum((1, 2, 3), keepdim=True))
        r_neg = sdiv((h * neg).sum((2, 3), keepdim=True), neg.sum((1, 2, 3), keepdim=True))
        rep = torch.cat((r_neg.squeeze(3), r_pos.squeeze(3)), -1)
        hh = h.reshape(x.shape[0], x.shape[1], -1)
        w = torch.linalg.inv(rep.transpose(1, 2) @ rep + torch.eye(2)) @ (rep.transpose(1, 2) @ hh)
        w = F.relu(w.reshape(w.shape[0], 2, x.shape[2], x.shape[3]))
        out.append(F.relu(w[:, 1:2] - w[:, 0:1]))
    return out[1], out[0]  # F_x, F_dx


def literal_conv(conv, x, r, g, mode):
    w = conv.weight.detach()
    f = lambda inp, k: F.conv2d(inp, k, None, conv.stride, conv.padding, conv.dilation, conv.groups)  # noqa: E731
    x = x.detach().requires_grad_()
    m = r.ne(0).double()
    if mode == "zb":
        lo = x.amin((1, 2, 3), keepdim=True) + 0 * x
        hi = x.amax((1, 2, 3), keepdim=True) + 0 * x
        wp, wn = w.clamp(min=0), w.clamp(max=0)
        leaves = [t.detach().requires_grad_() for t in (x, lo, hi)]
        za = f(leaves[0], w) - f(leaves[1], wp) - f(leaves[2], wn)
        s = sdiv(r, za)
        r_x, r_lo, r_hi = (leaf * grad(za, leaf, s) for leaf in leaves)
        return r_x + r_lo + r_hi, None
    y = f(x, w)
    g_in = grad(y, x, g)
    xabs = x.abs().detach().requires_grad_()
    z = f(xabs, w.abs()) * m
    c = xabs * grad(z, xabs, sdiv(r, z))
    if mode == "flat":
        return c, g_in
    mm = sdiv(F.relu((x * g_in).mean(1, keepdim=True)).expand_as(x), max_ps(F.relu((x * g_in).mean(1, keepdim=True))))
    g_masked = grad(y * m, x, g)
    f_x, f_dx = literal_factorization(x.detach(), g_masked, c.mean(1, keepdim=True))
    ones = torch.ones_like(x).requires_grad_()
    z1 = f(ones, w.abs()) * m
    a = ones * grad(z1, ones, sdiv(r, z1))
    res = (sdiv(f_x + mm, 1 + torch.exp(-c)) + f_dx + a) * c.ne(0).double()
    return delta_shift(c, res), g_in


def literal_simple(fn, xs, r, g):
    xs = [x.detach().requires_grad_() for x in xs]
    z = fn(*xs) * r.ne(0).double()
    s = sdiv(r, z)
    rel = [x * gx for x, gx in zip(xs, torch.autograd.grad(z, xs, s, retain_graph=True))]
    return rel, list(torch.autograd.grad(fn(*xs), xs, g))


# ---- helpers to run one fast rule on one module ----
def run_rule(rule_cls, module, xs, r, g, **kw):
    kind = leaf_kind(module) if module is not None else "add"
    names = tuple(f"in{i}" for i in range(len(xs)))
    step = Step(0, kind, "layer", names, "out", module=module)
    rule = rule_cls(step, torch.float64, **kw)
    out = rule.forward(dict(zip(names, xs)))
    r_in, g_in = rule.backward(r.clone(), g, [True] * len(xs))
    return out, r_in, g_in


def relevance_and_grad(shape, gen, mask_gradient):
    r = torch.randn(shape, generator=gen) * (torch.rand(shape, generator=gen) > 0.3)
    g = torch.randn(shape, generator=gen)
    return r, (g * r.ne(0) if mask_gradient else g)


GEOMETRIES = [  # in, out, kernel, stride, padding, dilation, groups, H, W
    (4, 6, 3, 1, 1, 1, 1, 9, 7),
    (4, 6, 3, 2, 1, 1, 2, 9, 8),
    (6, 4, 1, 1, 0, 1, 1, 5, 5),
    (6, 4, 1, 2, 0, 1, 1, 7, 6),
    (4, 4, 3, 1, 2, 2, 1, 8, 8),
    (4, 6, 5, 2, 2, 1, 1, 11, 10),
]


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("mode", ["full", "flat", "zb"])
@pytest.mark.parametrize("mask_gradient", [True, False])
def test_conv_rules_equal_the_spec(geometry, mode, mask_gradient):
    cin, cout, k, stride, pad, dil, groups, h, w = geometry
    gen = torch.Generator().manual_seed(hash((geometry, mode)) % 2**31)
    conv = nn.Conv2d(cin, cout, k, stride, pad, dil, groups, bias=True).double()
    nonneg = mode != "zb"
    x = torch.randn(2, cin, h, w, generator=gen)
    x = x.clamp(min=0) if nonneg else x
    out_shape = F.conv2d(x, conv.weight, None, stride, pad, dil, groups).shape
    r, g = relevance_and_grad(out_shape, gen, mask_gradient)
    rule_cls = {"full": agf.AgfConvRule, "flat": agf.FlatConvRule, "zb": base.BoundedConvRule}[mode]
    y, r_in, g_in = run_rule(rule_cls, conv, [x], r, g, nonneg=nonneg)
    want_r, want_g = literal_conv(conv, x, r, g, mode)
    torch.testing.assert_close(y, conv(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(r_in[0], want_r, rtol=1e-7, atol=1e-9 * want_r.abs().max().item())
    if want_g is not None:
        torch.testing.assert_close(g_in[0], want_g, rtol=1e-10, atol=1e-12)


def test_conv_rule_with_signed_input_uses_absolute_values():
    gen = torch.Generator().manual_seed(3)
    conv = nn.Conv2d(4, 5, 3, padding=1).double()
    x = torch.randn(2, 4, 6, 6, generator=gen)
    r, g = relevance_and_grad((2, 5, 6, 6), gen, False)
    for mode, cls in (("full", agf.AgfConvRule), ("flat", agf.FlatConvRule)):
        _, r_in, _ = run_rule(cls, conv, [x], r, g, nonneg=False)
        want, _ = literal_conv(conv, x, r, g, mode)
        torch.testing.assert_close(r_in[0], want, rtol=1e-7, atol=1e-9 * want.abs().max().item())


SIMPLE = [
    (base.ReluRule, nn.ReLU(inplace=True), lambda x: F.relu(x), (2, 3, 5, 5)),
    (base.MaxPoolRule, nn.MaxPool2d(3, 2, 1), lambda x: F.max_pool2d(x, 3, 2, 1), (2, 3, 9, 8)),
    (base.AvgPoolRule, nn.AvgPool2d(2), lambda x: F.avg_pool2d(x, 2), (2, 3, 8, 6)),
    (base.AdaptiveAvgPoolRule, nn.AdaptiveAvgPool2d((3, 2)), lambda x: F.adaptive_avg_pool2d(x, (3, 2)), (2, 3, 7, 5)),
]


@pytest.mark.parametrize("rule_cls, module, fn, shape", SIMPLE)
def test_simple_rules_equal_the_spec(rule_cls, module, fn, shape):
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(shape, generator=gen).clamp(min=0)
    y = fn(x)
    # relevance lives where the output is non-zero (as it does after any rule that keeps x * ...)
    r, g = torch.randn(y.shape, generator=gen) * y.ne(0), torch.randn(y.shape, generator=gen)
    out, r_in, g_in = run_rule(rule_cls, module, [x], r, g)
    want_r, want_g = literal_simple(fn, [x], r, g)
    torch.testing.assert_close(out, y)
    torch.testing.assert_close(r_in[0], want_r[0], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(g_in[0], want_g[0], rtol=1e-12, atol=1e-14)


def test_addition_rule_equals_the_spec():
    gen = torch.Generator().manual_seed(5)
    a, b = torch.randn(2, 3, 4, 4, generator=gen), torch.randn(2, 3, 4, 4, generator=gen)
    r, g = torch.randn(2, 3, 4, 4, generator=gen), torch.randn(2, 3, 4, 4, generator=gen)
    _, r_in, g_in = run_rule(base.AddRule, None, [a, b], r, g)
    want_r, want_g = literal_simple(torch.add, [a, b], r, g)
    for ours, theirs in zip(r_in + g_in, want_r + want_g):
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-14)


def test_linear_rules_equal_the_spec():
    gen = torch.Generator().manual_seed(9)
    lin = nn.Linear(4 * 3 * 3, 7).double()
    x4 = torch.randn(2, 4, 3, 3, generator=gen).clamp(min=0)
    x = x4.flatten(1)
    r, g = torch.randn(2, 7, generator=gen), torch.randn(2, 7, generator=gen)
    for unflattened in (None, x4.shape):
        step = Step(0, "linear", "fc", ("in0",), "out", module=lin)
        shapes = {"flat": x4.shape} if unflattened else {}
        rule = agf.AgfLinearRule(step, torch.float64, "flat" if unflattened else None, shapes)
        rule.forward({"in0": x})
        (r_in,), (g_in,) = rule.backward(r.clone(), g, [True])
        xa = x.abs().requires_grad_()
        z = F.linear(xa, lin.weight.detach().abs()) * r.ne(0).double()
        c = xa * grad(z, xa, sdiv(r, z))
        want = c
        if unflattened:
            gx = (g @ lin.weight.detach()).view(x4.shape)
            mm = (x4 * gx).mean(1, keepdim=True).expand_as(x4).reshape(x.shape)
            mm = F.relu(mm) * c.ne(0).double()
            want = delta_shift(c, sdiv(mm, max_ps(mm)))
        torch.testing.assert_close(r_in, want.detach(), rtol=1e-10, atol=1e-14)
        torch.testing.assert_close(g_in, g @ lin.weight.detach())


def test_start_rule_is_the_gradient_of_the_contrastive_softmax():
    gen = torch.Generator().manual_seed(11)
    lin = nn.Linear(6, 4).double()
    x = torch.randn(3, 6, generator=gen)
    targets = torch.tensor([0, 3, 1])
    step = Step(0, "linear", "fc", ("in0",), "out", module=lin)
    rule = agf.AgfStartRule(step, torch.float64)
    rule.forward({"in0": x})
    r, g = rule.start(targets, True)
    xr = x.clone().requires_grad_()
    y = lin(xr)
    yt = y.gather(1, targets[:, None])
    sigma = (y - yt).abs().max(dim=1, keepdim=True)[0]
    p = F.softmax(yt * torch.exp(-0.5 * ((y - yt) / sigma) ** 2), dim=1)
    want = torch.autograd.grad(p, xr, torch.zeros_like(p).scatter(1, targets[:, None], 1))[0]
    torch.testing.assert_close(g, want)
    torch.testing.assert_close(r, x * want)


def test_residual_split_stays_bounded_where_the_branches_cancel():
    # a + b is 1e-6 of |a| + |b|: the published split hands each branch ~1e6 times the relevance, with
    # opposite signs; the stabilised split keeps each below r / eps and still sums to about r.
    a, b, r = torch.tensor([1.0]), torch.tensor([-0.999999]), torch.tensor([1.0])
    step = Step(index=0, kind="add", inputs=("a", "b"), output="y", module=None, where="test add")
    for eps, bound in ((0.0, None), (0.01, 1 / (0.01 * 2))):
        rule = base.AddRule(step, torch.float32, eps)
        rule.forward({"a": a, "b": b})
        (ra, rb), _ = rule.backward(r.clone(), None, [False, False])
        if bound is None:
            assert ra.abs().item() > 1e5 and (ra + rb).item() == pytest.approx(1.0, rel=1e-2)
        else:
            assert ra.abs().item() <= bound and rb.abs().item() <= bound
            assert (ra + rb).item() == pytest.approx(1e-6 / (1e-6 + 0.01 * 1.999999), rel=1e-3)
