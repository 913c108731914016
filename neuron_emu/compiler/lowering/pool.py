"""Pooling lowerings (VectorE)."""
from __future__ import annotations

import torch

from neuron_emu.compiler.lowering import register
from neuron_emu.compiler.lowering.common import LoweringError, alloc_like_node, contiguous
from neuron_emu.compiler.lowering.reduce import reduce_into
from neuron_emu.isa import Instr, Op, ReduceOp

aten = torch.ops.aten


def _pair(v):
    v = list(v) if isinstance(v, (list, tuple)) else [v]
    return v * 2 if len(v) == 1 else v


def _pool(b, node, x, out, k, s, p, d, kind, count_include_pad=True, divisor=None):
    x = contiguous(b, x)
    if x.offset:
        from neuron_emu.compiler.lowering.norm import _own_buffer
        x = _own_buffer(b, x)
    NC = x.numel // (x.shape[-1] * x.shape[-2])
    f = dict(NC=NC, H=x.shape[-2], W=x.shape[-1], kh=k[0], kw=k[1], sh=s[0], sw=s[1], ph=p[0], pw=p[1], dh=d[0],
             dw=d[1], OH=out.shape[-2], OW=out.shape[-1], kind=kind, count_include_pad=int(count_include_pad),
             divisor_override=int(divisor or 0), in_dtype=x.emu, out_dtype=out.emu)
    b.emit(Instr(Op.Pool2d, [x.buf, out.buf], f), [x], [out])
    return out


@register(aten.max_pool2d_with_indices, aten.max_pool2d)
def _max_pool(b, node, x, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
    k = _pair(kernel_size)
    s = _pair(stride) if stride else k
    out = _pool(b, node, x, alloc_like_node(b, node, 0), k, s, _pair(padding), _pair(dilation), 0)
    if len(node.outputs) > 1 and node.outputs[1].id in b.used_values:
        from neuron_emu.compiler.lowering.pool_indices import max_pool_indices
        return out, max_pool_indices(b, node, x, k, s, _pair(padding), _pair(dilation))
    return (out, None) if len(node.outputs) > 1 else out


@register(aten.avg_pool2d)
def _avg_pool(b, node, x, kernel_size, stride=(), padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None):
    k = _pair(kernel_size)
    s = _pair(stride) if stride else k
    return _pool(b, node, x, alloc_like_node(b, node), k, s, _pair(padding), [1, 1], 1, count_include_pad, divisor_override)


@register(aten._adaptive_avg_pool2d, aten.adaptive_avg_pool2d)
def _adaptive_avg(b, node, x, output_size):
    out = alloc_like_node(b, node)
    H, W = x.shape[-2], x.shape[-1]
    oh, ow = _pair(output_size)
    if oh == 1 and ow == 1:
        return reduce_into(b, x, [len(x.shape) - 2, len(x.shape) - 1], ReduceOp.Mean, out)
    if H % oh or W % ow:  # windows of varying size: separable averaging matmuls
        from neuron_emu.compiler.lowering.resample import adaptive_avg_into
        return adaptive_avg_into(b, node, x, out)
    k = [H // oh, W // ow]
    return _pool(b, node, x, out, k, k, [0, 0], [1, 1], 1)
