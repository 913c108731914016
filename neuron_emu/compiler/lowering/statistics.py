"""Reductions composed from VectorE reduces and elementwise steps, in eager's order: vector norms, var/std (and
their _mean forms), logsumexp, nansum/nanmean, count_nonzero, dot products."""
from __future__ import annotations

import math

import torch

from neuron_emu.compiler.lowering import register
from neuron_emu.compiler.lowering.common import alloc_like_node
from neuron_emu.compiler.lowering.elementwise import select_into
from neuron_emu.compiler.lowering.math import _tmp, act, ts, tt
from neuron_emu.compiler.lowering.reduce import _dims, reduce_into
from neuron_emu.isa import ActFunc, ReduceOp

aten = torch.ops.aten


def _reduced_shape(x, dims, keepdim):
    return [1 if d in dims else s for d, s in enumerate(x.shape)] if keepdim else \
        [s for d, s in enumerate(x.shape) if d not in dims]


def _reduce(b, x, dims, op, out=None, keepdim=True):
    out = out if out is not None else _tmp(b, _reduced_shape(x, dims, keepdim))
    return reduce_into(b, x, dims, op, out)


@register(aten.linalg_vector_norm)
def _vector_norm(b, node, x, ord=2, dim=None, keepdim=False, *, dtype=None):
    return vector_norm_into(b, x, float(ord), _dims(x, dim), alloc_like_node(b, node))


@register(aten.norm.ScalarOpt_dim, aten.norm.Scalar, aten.norm.ScalarOpt_dim_dtype)
def _norm(b, node, x, p=2, dim=None, keepdim=False, **_):
    return vector_norm_into(b, x, 2.0 if p is None else float(p), _dims(x, dim), alloc_like_node(b, node))


def vector_norm_into(b, x, p, dims, out):
    """Eager: inf -> max|x|, -inf -> min|x|, 0 -> count of nonzeros, 1 -> sum|x|, 2 -> sqrt(sum x^2),
    else (sum |x|^p)^(1/p)."""
    if not x.shape:
        x, dims = x.with_view([1], [1]), [0]
    a = act(b, x, ActFunc.Abs)
    if p == math.inf:
        return reduce_into(b, a, dims, ReduceOp.Max, out)
    if p == -math.inf:
        return reduce_into(b, a, dims, ReduceOp.Min, out)
    if p == 0:
        return reduce_into(b, ts(b, x, "ne", 0.0), dims, ReduceOp.Sum, out)
    if p == 1:
        return reduce_into(b, a, dims, ReduceOp.Sum, out)
    if p == 2:
        s = _reduce(b, act(b, x, ActFunc.Square), dims, ReduceOp.Sum)
        return act(b, s.with_view(out.shape, out.strides), ActFunc.Sqrt, out)
    s = _reduce(b, ts(b, a, "pow", p), dims, ReduceOp.Sum)
    return ts(b, s.with_view(out.shape, out.strides), "pow", 1.0 / p, out)


def _correction(correction, unbiased):
    if correction is not None:
        return float(correction)
    return 1.0 if unbiased is None or unbiased else 0.0


def _var_into(b, x, dims, corr, out, sqrt=False, mean_out=None):
    """sum((x - mean)^2) / max(N - correction, 0); N is the reduced count."""
    if not x.shape:
        x, dims = x.with_view([1], [1]), [0]
    n = 1
    for d in dims:
        n *= x.shape[d]
    mean = _reduce(b, x, dims, ReduceOp.Mean)
    dev = act(b, tt(b, "sub", x, mean, _tmp(b, x.shape)), ActFunc.Square)
    s = _reduce(b, dev, dims, ReduceOp.Sum)
    s = s.with_view(out.shape, out.strides)
    denom = max(n - corr, 0.0)
    if sqrt:
        act(b, ts(b, s, "div", denom), ActFunc.Sqrt, out)
    else:
        ts(b, s, "div", denom, out)
    if mean_out is not None:
        from neuron_emu.compiler.lowering.common import dma_copy
        dma_copy(b, mean.with_view(mean_out.shape, mean_out.strides), mean_out)
    return out


def _var_like(sqrt):
    def lower(b, node, x, dim=None, unbiased=None, keepdim=False, *, correction=None):
        if isinstance(dim, bool):  # var(x, unbiased)
            dim, unbiased = None, dim
        return _var_into(b, x, _dims(x, dim), _correction(correction, unbiased), alloc_like_node(b, node), sqrt)
    return lower


register(aten.var)(_var_like(False))
register(aten.std)(_var_like(True))


def _var_mean_like(sqrt):
    def lower(b, node, x, dim=None, unbiased=None, keepdim=False, *, correction=None):
        if isinstance(dim, bool):
            dim, unbiased = None, dim
        out, mean = alloc_like_node(b, node, 0), alloc_like_node(b, node, 1)
        _var_into(b, x, _dims(x, dim), _correction(correction, unbiased), out, sqrt, mean)
        return out, mean
    return lower


register(aten.var_mean)(_var_mean_like(False))
register(aten.std_mean)(_var_mean_like(True))


@register(aten.logsumexp)
def _logsumexp(b, node, x, dim=(), keepdim=False):
    """Eager: m = max (0 where m is infinite) ; log(sum(exp(x - m))) + m."""
    out = alloc_like_node(b, node)
    if not x.shape:
        x = x.with_view([1], [1])
    dims = _dims(x, dim)
    m = _reduce(b, x, dims, ReduceOp.Max)
    m = select_into(b, act(b, m, ActFunc.IsInf), 0.0, m, _tmp(b, m.shape))
    e = act(b, tt(b, "sub", x, m, _tmp(b, x.shape)), ActFunc.Exp)
    s = act(b, _reduce(b, e, dims, ReduceOp.Sum), ActFunc.Log)
    return tt(b, "add", s.with_view(out.shape, out.strides), m.with_view(out.shape, out.strides), out)


@register(aten.nansum)
def _nansum(b, node, x, dim=None, keepdim=False, *, dtype=None):
    clean = select_into(b, act(b, x, ActFunc.IsNan), 0.0, x, _tmp(b, x.shape))
    return reduce_into(b, clean, _dims(x, dim), ReduceOp.Sum, alloc_like_node(b, node))


@register(aten.count_nonzero)
def _count_nonzero(b, node, x, dim=None):
    if not x.shape:
        x = x.with_view([1], [1])
    return reduce_into(b, ts(b, x, "ne", 0.0), _dims(x, dim), ReduceOp.Sum, alloc_like_node(b, node))


@register(aten.dot, aten.vdot, aten.inner)
def _dot(b, node, x, y):
    """A dot product is a 1x1 TensorE matmul: [1, K] @ [K, 1]."""
    from neuron_emu.compiler.lowering.matmul import emit_matmul
    out = alloc_like_node(b, node)
    k = x.shape[0] if x.shape else 1
    emit_matmul(b, node, x.with_view([1, k], [0, x.strides[0] if x.shape else 1]),
                y.with_view([k, 1], [y.strides[0] if y.shape else 1, 0]), out.with_view([1, 1], [1, 1]))
    return out


@register(aten.mv)
def _mv(b, node, m, v):
    from neuron_emu.compiler.lowering.matmul import emit_matmul
    out = alloc_like_node(b, node)
    emit_matmul(b, node, m, v.with_view([v.shape[0], 1], [v.strides[0], 0]), out.with_view([out.shape[0], 1], [1, 1]))
    return out


@register(aten.addmv)
def _addmv(b, node, bias, m, v, *, beta=1, alpha=1):
    from neuron_emu.compiler.lowering.elementwise import binary_into
    mv = _tmp(b, [m.shape[0]])
    from neuron_emu.compiler.lowering.matmul import emit_matmul
    emit_matmul(b, node, m, v.with_view([v.shape[0], 1], [v.strides[0], 0]), mv.with_view([m.shape[0], 1], [1, 1]),
                alpha=float(alpha))
    out = alloc_like_node(b, node)
    if float(beta) == 0.0:
        from neuron_emu.compiler.lowering.common import dma_copy
        dma_copy(b, mv, out)
        return out
    return binary_into(b, "add", mv, bias, out, beta_b=float(beta)) if float(beta) != 1.0 else \
        binary_into(b, "add", mv, bias, out)


@register(aten.trace)
def _trace(b, node, x):
    n = min(x.shape)
    diag = x.with_view([n], [x.strides[0] + x.strides[1]])
    return reduce_into(b, diag, [0], ReduceOp.Sum, alloc_like_node(b, node))


@register(aten.aminmax)
def _aminmax(b, node, x, *, dim=None, keepdim=False):
    if not x.shape:
        x = x.with_view([1], [1])
    dims = _dims(x, dim)
    return (reduce_into(b, x, dims, ReduceOp.Min, alloc_like_node(b, node, 0)),
            reduce_into(b, x, dims, ReduceOp.Max, alloc_like_node(b, node, 1)))



@register(aten.dist)
def _dist(b, node, x, y, p=2):
    d = tt(b, "sub", x, y, _tmp(b, list(torch.broadcast_shapes(tuple(x.shape), tuple(y.shape)))))
    return vector_norm_into(b, d, float(p), list(range(len(d.shape))), alloc_like_node(b, node))


@register(aten.addr)
def _addr(b, node, bias, v1, v2, *, beta=1, alpha=1):
    """beta * bias + alpha * outer(v1, v2): the outer product is a K=1 TensorE matmul."""
    from neuron_emu.compiler.lowering.elementwise import binary_into
    from neuron_emu.compiler.lowering.matmul import emit_matmul
    n, m = v1.shape[0], v2.shape[0]
    outer = _tmp(b, [n, m])
    emit_matmul(b, node, v1.with_view([n, 1], [v1.strides[0], 1]), v2.with_view([1, m], [1, v2.strides[0]]), outer,
                alpha=float(alpha))
    out = alloc_like_node(b, node)
    if float(beta) == 0.0:
        from neuron_emu.compiler.lowering.common import dma_copy
        dma_copy(b, outer, out)
        return out
    return binary_into(b, "add", outer, bias, out, beta_b=float(beta))
