"""Parametrised activations (ScalarE functions plus VectorE/GpSimdE selects): elu/selu/celu, softplus with beta and
threshold, threshold, hard/soft shrink, GLU, log-sigmoid, PReLU. Each follows eager's formula and branch order."""
from __future__ import annotations

import torch

from neuron_emu.compiler.lowering import register
from neuron_emu.compiler.lowering.common import alloc_like_node, norm_dim
from neuron_emu.compiler.lowering.elementwise import select_into
from neuron_emu.compiler.lowering.math import _tmp, act, ts, tt
from neuron_emu.compiler.lowering.views import _slice
from neuron_emu.isa import ActFunc

aten = torch.ops.aten


@register(aten.elu)
def _elu(b, node, x, alpha=1.0, scale=1.0, input_scale=1.0):
    """Eager: x > 0 ? x * scale : expm1(x * input_scale) * alpha * scale."""
    out = alloc_like_node(b, node)
    alpha, scale, input_scale = float(alpha), float(scale), float(input_scale)
    if scale == 1.0 and input_scale == 1.0:
        return act(b, x, ActFunc.Elu, out, param=alpha)
    neg = ts(b, act(b, x, ActFunc.Expm1, scale=input_scale), "mul", alpha * scale)
    return select_into(b, ts(b, x, "gt", 0.0), ts(b, x, "mul", scale), neg, out)


@register(aten.celu)
def _celu(b, node, x, alpha=1.0):
    return _elu(b, node, x, alpha, 1.0, 1.0 / float(alpha))


@register(aten.selu)
def _selu(b, node, x):
    return _elu(b, node, x, 1.6732632423543772848170429916717, 1.0507009873554804934193349852946, 1.0)


@register(aten.softplus)
def _softplus(b, node, x, beta=1, threshold=20):
    """Eager: x * beta > threshold ? x : log1p(exp(x * beta)) / beta."""
    out = alloc_like_node(b, node)
    beta, threshold = float(beta), float(threshold)
    if beta == 1.0 and threshold == 20.0:
        return act(b, x, ActFunc.Softplus, out)
    soft = ts(b, act(b, act(b, x, ActFunc.Exp, scale=beta), ActFunc.Log1p), "div", beta)
    return select_into(b, ts(b, x, "mul", beta, op1="gt", s1=threshold), x, soft, out)


@register(aten.threshold)
def _threshold(b, node, x, threshold, value):
    return select_into(b, ts(b, x, "le", float(threshold)), float(value), x, alloc_like_node(b, node))


@register(aten.hardshrink)
def _hardshrink(b, node, x, lambd=0.5):
    inside = ts(b, act(b, x, ActFunc.Abs), "le", float(lambd))
    return select_into(b, inside, 0.0, x, alloc_like_node(b, node))


@register(aten.softshrink)
def _softshrink(b, node, x, lambd=0.5):
    """Eager: x > l ? x - l : (x < -l ? x + l : 0)."""
    out = alloc_like_node(b, node)
    l = float(lambd)
    r = select_into(b, ts(b, x, "lt", -l), ts(b, x, "add", l), 0.0, _tmp(b, x.shape))
    return select_into(b, ts(b, x, "gt", l), ts(b, x, "sub", l), r, out)


@register(aten.glu)
def _glu(b, node, x, dim=-1):
    d = norm_dim(dim, len(x.shape))
    h = x.shape[d] // 2
    a, g = _slice(b, node, x, d, 0, h), _slice(b, node, x, d, h, 2 * h)
    return tt(b, "mul", a, act(b, g, ActFunc.Sigmoid), alloc_like_node(b, node))


@register(aten.log_sigmoid_forward)
def _log_sigmoid(b, node, x):
    """Eager: min(x, 0) - log1p(exp(-|x|)); the second output (a buffer for backward) is not produced."""
    lp = act(b, act(b, act(b, x, ActFunc.Abs), ActFunc.Exp, scale=-1.0), ActFunc.Log1p)
    return tt(b, "sub", ts(b, x, "min", 0.0), lp, alloc_like_node(b, node, 0)), None


@register(aten._prelu_kernel, aten.prelu)
def _prelu(b, node, x, weight):
    return select_into(b, ts(b, x, "gt", 0.0), x, tt(b, "mul", x, weight, _tmp(b, node.outputs[0].shape)),
                       alloc_like_node(b, node))
