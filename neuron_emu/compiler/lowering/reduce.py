"""Reductions, softmax and scans on VectorE, over a contiguous [outer, R, inner] view."""
from __future__ import annotations

import torch

from neuron_emu.compiler.lowering import register
from neuron_emu.compiler.lowering.common import LoweringError, alloc_like_node, contiguous, dma_copy, fill_into, norm_dim
from neuron_emu.isa import Alu, Instr, Op, ReduceOp

aten = torch.ops.aten


def _dims(x, dim):
    nd = max(len(x.shape), 1)
    if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
        return list(range(len(x.shape)))
    dims = dim if isinstance(dim, (list, tuple)) else [dim]
    return sorted({norm_dim(d, nd) for d in dims})


def _outer_r_inner(b, x, dims):
    """Make the reduced dims one contiguous run; returns (tv, outer, R, inner)."""
    shape = list(x.shape)
    if dims != list(range(dims[0], dims[0] + len(dims))):  # not adjacent: move them to the end
        keep = [d for d in range(len(shape)) if d not in dims]
        perm = keep + dims
        xt = x.with_view([shape[d] for d in perm], [x.strides[d] for d in perm])
        x = b.alloc(xt.shape, x.dtype, x.emu)
        dma_copy(b, xt, x)
        shape = list(x.shape)
        dims = list(range(len(keep), len(shape)))
    x = contiguous(b, x)
    outer = 1
    for s in shape[:dims[0]]:
        outer *= s
    R = 1
    for d in dims:
        R *= shape[d]
    inner = 1
    for s in shape[dims[-1] + 1:]:
        inner *= s
    return x, outer, R, inner


_EMPTY_RESULT = {ReduceOp.Sum: 0.0, ReduceOp.Mean: float("nan"), ReduceOp.Prod: 1.0, ReduceOp.Any: 0.0,
                 ReduceOp.All: 1.0}


def reduce_into(b, x, dims, op: ReduceOp, out):
    if not x.shape:
        x = x.with_view([1], [1])
        dims = [0]
    x, outer, R, inner = _outer_r_inner(b, x, dims)
    if R == 0:  # reducing an empty extent gives the op's identity, as eager does (max/argmax already failed eagerly)
        if op not in _EMPTY_RESULT:
            raise LoweringError(f"{op.name} over an empty dimension has no identity")
        return fill_into(b, out, _EMPTY_RESULT[op])
    f = dict(outer=outer, R=R, inner=inner, reduce_op=op, in_dtype=x.emu, out_dtype=out.emu)
    b.emit(Instr(Op.TensorReduce, [x.buf, out.buf], f), [x], [out])
    return out


def _reduction(op):
    def lower(b, node, x, dim=None, keepdim=False, *, dtype=None):
        return reduce_into(b, x, _dims(x, dim), op, alloc_like_node(b, node))
    return lower


register(aten.sum)(_reduction(ReduceOp.Sum))
register(aten.mean)(_reduction(ReduceOp.Mean))
register(aten.amax)(_reduction(ReduceOp.Max))
register(aten.amin)(_reduction(ReduceOp.Min))
register(aten.any)(_reduction(ReduceOp.Any))
register(aten.all)(_reduction(ReduceOp.All))


@register(aten.prod)
def _prod(b, node, x, dim=None, keepdim=False, *, dtype=None):
    return reduce_into(b, x, _dims(x, dim), ReduceOp.Prod, alloc_like_node(b, node))


@register(aten.argmax, aten.argmin)
def _argmax(b, node, x, dim=None, keepdim=False):
    op = ReduceOp.ArgMax if node.target.overloadpacket is aten.argmax else ReduceOp.ArgMin
    if dim is None:
        x = contiguous(b, x).with_view([x.numel], [1])
        dim = 0
    return reduce_into(b, x, [norm_dim(dim, len(x.shape))], op, alloc_like_node(b, node))


@register(aten.max, aten.min)
def _max_dim(b, node, x, dim=None, keepdim=False):
    is_max = node.target.overloadpacket is aten.max
    if dim is None or not isinstance(dim, int):
        if dim is not None:  # max.other(x, y): elementwise
            from neuron_emu.compiler.lowering.elementwise import binary_into
            return binary_into(b, "max" if is_max else "min", x, dim, alloc_like_node(b, node))
        return reduce_into(b, x, _dims(x, None), ReduceOp.Max if is_max else ReduceOp.Min, alloc_like_node(b, node))
    d = norm_dim(dim, len(x.shape))
    vals = reduce_into(b, x, [d], ReduceOp.Max if is_max else ReduceOp.Min, alloc_like_node(b, node, 0))
    idx = reduce_into(b, x, [d], ReduceOp.ArgMax if is_max else ReduceOp.ArgMin, alloc_like_node(b, node, 1))
    return vals, idx


def softmax_into(b, x, dim: int, out, log: bool = False):
    """out = (log_)softmax(x) over `dim`; out is contiguous with x's shape."""
    x, outer, R, inner = _outer_r_inner(b, x, [norm_dim(dim, len(x.shape))])
    f = dict(outer=outer, R=R, inner=inner, log=int(log), in_dtype=x.emu, out_dtype=out.emu)
    b.emit(Instr(Op.Softmax, [x.buf, out.buf], f), [x], [out])
    return out


def _softmax_lower(log):
    def lower(b, node, x, dim, half_to_float=False, *_, **__):
        return softmax_into(b, x, dim, alloc_like_node(b, node), log)
    return lower


register(aten._softmax, aten.softmax)(_softmax_lower(False))
register(aten._log_softmax, aten.log_softmax)(_softmax_lower(True))


@register(aten.cumsum, aten.cumprod)
def _cumsum(b, node, x, dim, *, dtype=None):
    out = alloc_like_node(b, node)
    alu = Alu.Add if node.target.overloadpacket is aten.cumsum else Alu.Mul
    if not x.shape:  # a 0-dim tensor is its own cumulative sum
        x = x.with_view([1], [1])
    d = norm_dim(dim, max(len(x.shape), 1))
    x, outer, R, inner = _outer_r_inner(b, x, [d])
    f = dict(outer=outer, R=R, inner=inner, alu=alu, in_dtype=x.emu, out_dtype=out.emu)
    b.emit(Instr(Op.Scan, [x.buf, out.buf], f), [x], [out])
    return out
