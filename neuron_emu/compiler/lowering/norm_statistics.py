"""Norms computed from the batch's own statistics, and the statistics outputs of the fused norm ops: training-mode
batch norm (normalised with the batch mean and biased variance; also the saved mean / inverse std and the updated
running statistics of the functional form), and layer/group norm's mean and rstd outputs when something reads them.
VectorE reduces and elementwise steps, in eager's formula: (x - mean) * rsqrt(var + eps) * weight + bias."""
from __future__ import annotations

import torch

from neuron_emu.compiler.lowering import register
from neuron_emu.compiler.lowering.common import alloc_like_node, contiguous, dma_copy
from neuron_emu.compiler.lowering.math import _tmp, act, ts, tt
from neuron_emu.compiler.lowering.reduce import reduce_into
from neuron_emu.isa import ActFunc, ReduceOp

aten = torch.ops.aten


def _wanted(b, node, i):
    return len(node.outputs) > i and node.outputs[i].id in b.used_values


def mean_rstd(b, x3, eps):
    """x3 [outer, R, inner] contiguous -> (mean, biased var, rstd) each [outer, 1, inner]."""
    o, _, i = x3.shape
    mean = reduce_into(b, x3, [1], ReduceOp.Mean, _tmp(b, [o, 1, i]))
    dev = act(b, tt(b, "sub", x3, mean, _tmp(b, x3.shape)), ActFunc.Square)
    var = reduce_into(b, dev, [1], ReduceOp.Mean, _tmp(b, [o, 1, i]))
    rstd = act(b, ts(b, var, "add", float(eps)), ActFunc.Rsqrt)
    return mean, var, rstd


def stats_outputs(b, node, x, rows, D, eps, first=1):
    """Mean / rstd outputs (indices first, first+1) of a norm over rows of D elements, if read."""
    if not (_wanted(b, node, first) or _wanted(b, node, first + 1)):
        return None, None
    x3 = contiguous(b, x).with_view([rows, D, 1], [D, 1, 1])
    mean, _, rstd = mean_rstd(b, x3, eps)
    outs = []
    for k, t in ((first, mean), (first + 1, rstd)):
        o = alloc_like_node(b, node, k)
        dma_copy(b, t.with_view(o.shape, o.strides) if t.numel == o.numel else t, o)
        outs.append(o)
    return tuple(outs)


def batch_norm_train(b, node, x, weight, bias, running_mean, running_var, momentum, eps, run_outputs=(3, 4)):
    """(out, save_mean, save_invstd[, new running mean, new running var]) with the batch's statistics."""
    out = alloc_like_node(b, node, 0)
    N, C = x.shape[0], x.shape[1]
    HW = x.numel // max(N * C, 1)
    xc = contiguous(b, x)
    # [N, C, HW] -> [C, N*HW]: channels first so each channel's elements are one reduced run
    xt = b.alloc([C, N, HW], x.dtype, x.emu)
    dma_copy(b, xc.with_view([C, N, HW], [HW, C * HW, 1]), xt)
    x3 = xt.with_view([C, N * HW, 1], [N * HW, 1, 1])
    mean, var, rstd = mean_rstd(b, x3, eps)
    mean_b, rstd_b = mean.with_view([1, C, 1], [1, 1, 0]), rstd.with_view([1, C, 1], [1, 1, 0])
    y = tt(b, "mul", tt(b, "sub", xc.with_view([N, C, HW], [C * HW, HW, 1]), mean_b, _tmp(b, [N, C, HW])), rstd_b,
           _tmp(b, [N, C, HW]) if weight is not None or bias is not None else out.with_view([N, C, HW], [C * HW, HW, 1]))
    if weight is not None:
        y = tt(b, "mul", y, weight.with_view([1, C, 1], [0, weight.strides[0], 0]),
               _tmp(b, [N, C, HW]) if bias is not None else out.with_view([N, C, HW], [C * HW, HW, 1]))
    if bias is not None:
        y = tt(b, "add", y, bias.with_view([1, C, 1], [0, bias.strides[0], 0]), out.with_view([N, C, HW], [C * HW, HW, 1]))
    res = [out]
    for k, t in ((1, mean), (2, rstd)):
        if len(node.outputs) > k:
            o = alloc_like_node(b, node, k)
            dma_copy(b, t.with_view(o.shape, o.strides), o)
            res.append(o)
    for k in range(3, run_outputs[0]):  # reserve space (empty on CPU)
        res.append(alloc_like_node(b, node, k))
    if len(node.outputs) > run_outputs[0] and running_mean is not None:  # updated running statistics (unbiased var)
        n = N * HW
        m = float(momentum)
        for k, stat, run in ((run_outputs[0], mean, running_mean), (run_outputs[1], var, running_var)):
            o = alloc_like_node(b, node, k)
            s = stat.with_view([C], [1])
            if k == run_outputs[1]:
                s = ts(b, s, "mul", n / max(n - 1, 1))
            tt(b, "add", ts(b, run, "mul", 1.0 - m), ts(b, s, "mul", m), o)
            res.append(o)
    return tuple(res)


@register(aten._native_batch_norm_legit_functional)
def _bn_functional(b, node, x, weight, bias, running_mean, running_var, training, momentum, eps):
    if not training:
        from neuron_emu.compiler.lowering.norm import _batch_norm
        res = _batch_norm(b, node, x, weight, bias, running_mean, running_var, eps)
        return (res[0], res[1], res[2], running_mean, running_var)
    return batch_norm_train(b, node, x, weight, bias, running_mean, running_var, momentum, eps)


@register(aten._native_batch_norm_legit.no_stats)
def _bn_no_stats(b, node, x, weight, bias, training, momentum, eps):
    return batch_norm_train(b, node, x, weight, bias, None, None, momentum, eps)


@register(aten._batch_norm_with_update_functional)
def _bn_with_update(b, node, x, weight, bias, running_mean, running_var, momentum, eps):
    return batch_norm_train(b, node, x, weight, bias, running_mean, running_var, momentum, eps, run_outputs=(4, 5))
