"""Loss functions eager keeps as fused ATen ops (most losses decompose into elementwise ops already), and the two
backward helpers the published supported-ops list names: elementwise VectorE/ScalarE steps and reductions,
following eager's formulas. reduction: 0 none, 1 mean, 2 sum."""
from __future__ import annotations

import torch

from neuron_emu.compiler.lowering import register
from neuron_emu.compiler.lowering.common import alloc_like_node, dma_copy, fill_into
from neuron_emu.compiler.lowering.elementwise import select_into
from neuron_emu.compiler.lowering.math import _tmp, act, ts, tt
from neuron_emu.compiler.lowering.reduce import reduce_into
from neuron_emu.isa import ActFunc, ReduceOp

aten = torch.ops.aten


def _reduce(b, node, per_elem, reduction, i=0):
    out = alloc_like_node(b, node, i)
    if reduction == 0:
        dma_copy(b, per_elem, out)
        return out
    x = per_elem if per_elem.shape else per_elem.with_view([1], [1])
    return reduce_into(b, x, list(range(len(x.shape))), ReduceOp.Mean if reduction == 1 else ReduceOp.Sum, out)


def _shape(x, y):
    return list(torch.broadcast_shapes(tuple(x.shape), tuple(y.shape)))


@register(aten.mse_loss)
def _mse(b, node, x, y, reduction=1):
    return _reduce(b, node, act(b, tt(b, "sub", x, y, _tmp(b, _shape(x, y))), ActFunc.Square), reduction)


@register(aten.smooth_l1_loss, aten.huber_loss)
def _smooth_l1(b, node, x, y, reduction=1, beta=1.0):
    """smooth_l1: |d| < beta ? 0.5 d^2 / beta : |d| - 0.5 beta; huber (delta): |d| < delta ? 0.5 d^2 : delta (|d| - 0.5 delta)."""
    huber = node.target.overloadpacket is aten.huber_loss
    beta = float(beta)
    sh = _shape(x, y)
    ad = act(b, tt(b, "sub", x, y, _tmp(b, sh)), ActFunc.Abs)
    sq = ts(b, act(b, ad, ActFunc.Square), "mul", 0.5)
    if huber:
        lin = ts(b, ts(b, ad, "sub", 0.5 * beta), "mul", beta)
    else:
        sq = ts(b, sq, "div", beta) if beta != 0 else sq
        lin = ts(b, ad, "sub", 0.5 * beta)
    per = select_into(b, ts(b, ad, "lt", beta), sq, lin, _tmp(b, sh)) if beta != 0 or huber else ad
    return _reduce(b, node, per, reduction)


@register(aten.soft_margin_loss)
def _soft_margin(b, node, x, y, reduction=1):
    sh = _shape(x, y)
    z = ts(b, tt(b, "mul", x, y, _tmp(b, sh)), "mul", -1.0)
    return _reduce(b, node, act(b, act(b, z, ActFunc.Exp), ActFunc.Log1p), reduction)


@register(aten.binary_cross_entropy)
def _bce(b, node, x, y, weight=None, reduction=1):
    """-(y * max(log x, -100) + (1 - y) * max(log(1 - x), -100)) (* weight)."""
    sh = _shape(x, y)
    lx = ts(b, act(b, x, ActFunc.Log), "max", -100.0)
    l1x = ts(b, act(b, x, ActFunc.Log1p, scale=-1.0), "max", -100.0)
    a = tt(b, "mul", ts(b, y, "sub", 1.0, reverse0=True), l1x, _tmp(b, sh))
    per = ts(b, tt(b, "add", tt(b, "mul", y, lx, _tmp(b, sh)), a, _tmp(b, sh)), "mul", -1.0)
    if weight is not None:
        per = tt(b, "mul", per, weight, _tmp(b, sh))
    return _reduce(b, node, per, reduction)


@register(aten.nll_loss2d_forward)
def _nll2d(b, node, x, target, weight, reduction, ignore_index):
    """x [N, C, H, W]: classes moved last and the positions flattened into the batch."""
    from neuron_emu.compiler.lowering.common import contiguous
    N, C, H, W = x.shape
    xt = contiguous(b, x.with_view([N, H, W, C], [x.strides[0], x.strides[2], x.strides[3], x.strides[1]]))
    t = contiguous(b, target).with_view([N * H * W], [1])
    return _nll(b, node, xt.with_view([N * H * W, C], [C, 1]), t, weight, reduction, ignore_index)


@register(aten.nll_loss_forward)
def _nll(b, node, x, target, weight, reduction, ignore_index):
    """x [N, C] or [C] log-probabilities, target [N] or []: -w[t] x[n, t], ignored targets contribute 0;
    mean divides by the total weight of the targets kept (also output 1)."""
    C = x.shape[-1]
    N = x.shape[0] if len(x.shape) == 2 else 1
    x2 = x if len(x.shape) == 2 else x.with_view([1, C], [0, x.strides[0]])
    t = target.with_view([N, 1], [target.strides[0] if target.shape else 0, 0])
    onehot = tt(b, "eq", t, b.const(torch.arange(C, dtype=torch.float32).view(1, C)), _tmp(b, [N, C]))
    keep = ts(b, t, "ne", float(ignore_index))
    onehot = tt(b, "mul", onehot, keep, _tmp(b, [N, C]))
    if weight is not None:
        onehot = tt(b, "mul", onehot, weight.with_view([1, C], [0, weight.strides[0]]), _tmp(b, [N, C]))
    picked = reduce_into(b, tt(b, "mul", x2, onehot, _tmp(b, [N, C])), [1], ReduceOp.Sum, _tmp(b, [N]))
    per = ts(b, picked, "mul", -1.0)
    wsum = reduce_into(b, onehot, [0, 1], ReduceOp.Sum, _tmp(b, [1]))
    tw = alloc_like_node(b, node, 1)
    dma_copy(b, wsum.with_view(tw.shape, tw.strides) if tw.shape else wsum.with_view([], []), tw)
    out = alloc_like_node(b, node, 0)
    if reduction == 0:
        from neuron_emu.isa import contiguous_strides
        dma_copy(b, per.with_view(out.shape, contiguous_strides(out.shape)) if out.shape else per.with_view([], []), out)
    elif reduction == 2:
        reduce_into(b, per, [0], ReduceOp.Sum, out.with_view([], []) if not out.shape else out)
    else:
        s = reduce_into(b, per, [0], ReduceOp.Sum, _tmp(b, [1]))
        tt(b, "div", s, wsum, out.with_view([1], [1]) if not out.shape else out)
    return out, tw


@register(aten._softmax_backward_data)
def _softmax_backward(b, node, grad, y, dim, input_dtype):
    """grad_input = y * (grad - sum(grad * y, dim))."""
    from neuron_emu.compiler.lowering.common import norm_dim
    d = norm_dim(dim, len(y.shape))
    gy = tt(b, "mul", grad, y, _tmp(b, list(y.shape)))
    keep = [1 if i == d else s for i, s in enumerate(y.shape)]
    s = reduce_into(b, gy, [d], ReduceOp.Sum, _tmp(b, keep))
    return tt(b, "mul", y, tt(b, "sub", grad, s, _tmp(b, list(y.shape))), alloc_like_node(b, node))


@register(aten.native_dropout_backward)
def _dropout_backward(b, node, grad, mask, scale):
    return ts(b, tt(b, "mul", grad, mask, _tmp(b, list(grad.shape))), "mul", float(scale), alloc_like_node(b, node))


@register(aten.zero)
def _zero(b, node, x):
    out = alloc_like_node(b, node)
    fill_into(b, out, 0.0)
    return out
