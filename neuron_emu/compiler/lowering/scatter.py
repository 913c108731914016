"""Scatters: scatter / scatter_add / scatter_reduce, index_add / index_copy / index_fill / index_reduce, index_put.

Built from existing engine instructions, without a scatter instruction: every source element's target position in
the (flattened) output is computed like torch.gather's (index * stride + a compile-time base), compared with the
output positions into a one-hot matrix M [n_src, n_out] (VectorE), and then
- sum / mean: M^T @ src on TensorE (plus a count M^T @ 1 for mean);
- prod / amax / amin: a VectorE reduce over n_src of select(M, src, identity);
- replace (scatter, index_copy, index_put): the last writer per position (max over select(M, position, -1)), its
  value gathered (GpSimdE) — the element eager's serial loop leaves there.
Positions no source element hits keep `self` (include_self=False semantics) or combine with it.
The one-hot matrix bounds the size this lowering accepts (MAX_ONE_HOT elements); larger scatters get a clear error."""
from __future__ import annotations

import torch

from neuron_emu.compiler.lowering import register
from neuron_emu.compiler.lowering.common import LoweringError, alloc_like_node, contiguous, norm_dim
from neuron_emu.compiler.lowering.elementwise import select_into
from neuron_emu.compiler.lowering.indexing import gather_rows
from neuron_emu.compiler.lowering.math import _tmp, ts, tt
from neuron_emu.compiler.lowering.reduce import reduce_into
from neuron_emu.isa import ReduceOp

aten = torch.ops.aten
MAX_ONE_HOT = 1 << 22  # 16 MiB of fp32 scratch for M


def _targets(b, index_view, dim, out_strides):
    """Flat output position of each element of index_view (any shape; index along `dim`, other coordinates as
    they are): index * stride_dim + sum of the other coordinates times their strides."""
    shape = list(index_view.shape) or [1]
    base = torch.zeros(shape, dtype=torch.float32)
    for d, n in enumerate(shape):
        if d != dim:
            coord = torch.arange(n, dtype=torch.float32) * out_strides[d]
            base = base + coord.view([n if i == d else 1 for i in range(len(shape))])
    idx = index_view if index_view.shape else index_view.with_view([1], [1])
    scaled = ts(b, idx, "mul", float(out_strides[dim]), _tmp(b, shape))
    return tt(b, "add", scaled, b.const(base), _tmp(b, shape))


def scatter_flat(b, op_name, self_tv, targets, src, reduce, include_self, out):
    """out (contiguous, self's shape) = self with src (same numel as targets; a Python number for a fill) combined
    at the flat positions `targets` by `reduce` in {"replace", "sum", "prod", "mean", "amax", "amin"}."""
    n, n_out = targets.numel, out.numel
    if n * n_out > MAX_ONE_HOT:
        raise LoweringError(f"{op_name}: scattering {n} elements into {n_out} needs a {n}x{n_out} one-hot matrix, "
                            f"larger than this lowering's {MAX_ONE_HOT} elements")
    flat_out = out.with_view([n_out], [1])
    self_flat = contiguous(b, self_tv).with_view([n_out], [1]) if self_tv.shape else self_tv.with_view([1], [1])
    if n == 0:
        from neuron_emu.compiler.lowering.common import dma_copy
        dma_copy(b, self_flat, flat_out)
        return out
    t = contiguous(b, targets).with_view([n, 1], [1, 0])
    pos = b.const(torch.arange(n_out, dtype=torch.float32).view(1, n_out))
    M = tt(b, "eq", t, pos, _tmp(b, [n, n_out]))
    hit = reduce_into(b, M, [0], ReduceOp.Max, _tmp(b, [n_out]))
    if isinstance(src, (int, float)):
        src_col = float(src)
    else:
        src_col = contiguous(b, src).with_view([n, 1], [1, 0])
    if reduce == "replace":
        who = b.const(torch.arange(n, dtype=torch.float32).view(n, 1))
        last = reduce_into(b, select_into(b, M, who, -1.0, _tmp(b, [n, n_out])), [0], ReduceOp.Max, _tmp(b, [n_out]))
        if isinstance(src_col, float):
            val = src_col
        else:
            safe = ts(b, last, "max", 0.0)
            val = gather_rows(b, src_col.with_view([n, 1], [1, 1]), safe, _tmp(b, [n_out, 1])).with_view([n_out], [1])
        return _finish(b, select_into(b, hit, val, self_flat, flat_out), out)
    if reduce in ("sum", "mean"):
        from neuron_emu.compiler.lowering.matmul import emit_matmul
        if isinstance(src_col, float):
            src_col = b.const(torch.full((n, 1), src_col, dtype=torch.float32))
        total = _tmp(b, [n_out])
        emit_matmul(b, None, M.with_view([n_out, n], [1, n_out]), src_col.with_view([n, 1], [1, 1]),
                    total.with_view([n_out, 1], [1, 1]))
        if reduce == "mean":
            cnt = reduce_into(b, M, [0], ReduceOp.Sum, _tmp(b, [n_out]))
            if include_self:
                total = tt(b, "add", total, self_flat, _tmp(b, [n_out]))
                cnt = ts(b, cnt, "add", 1.0)
            mean = tt(b, "div", total, ts(b, cnt, "max", 1.0), _tmp(b, [n_out]))
            return _finish(b, select_into(b, hit, mean, self_flat, flat_out), out)
        if include_self:
            return _finish(b, tt(b, "add", self_flat, total, flat_out), out)
        return _finish(b, select_into(b, hit, total, self_flat, flat_out), out)
    ident, rop, combine = {"prod": (1.0, ReduceOp.Prod, "mul"), "amax": (float("-inf"), ReduceOp.Max, "max"),
                           "amin": (float("inf"), ReduceOp.Min, "min")}[reduce]
    vals = select_into(b, M, src_col, ident, _tmp(b, [n, n_out]))
    r = reduce_into(b, vals, [0], rop, _tmp(b, [n_out]))
    if include_self:
        return _finish(b, tt(b, combine, self_flat, r, flat_out), out)
    return _finish(b, select_into(b, hit, r, self_flat, flat_out), out)


def _finish(b, _flat, out):
    return out


_REDUCE_NAMES = {"sum": "sum", "add": "sum", "prod": "prod", "multiply": "prod", "mean": "mean", "amax": "amax",
                 "amin": "amin"}


def _scatter_dim(b, node, x, dim, index, src, reduce, include_self=True):
    out = alloc_like_node(b, node)
    nd = max(len(x.shape), 1)
    dim = norm_dim(dim, nd)
    strides = list(out.strides) or [1]
    if index.numel == 0:
        return scatter_flat(b, node.name, x, _tmp(b, [0]), src, "replace", True, out)
    targets = _targets(b, index, dim, strides)
    if not isinstance(src, (int, float)):
        src = src.with_view(index.shape, src.strides[:len(index.shape)]) if src.shape else src.with_view([1], [1])
    return scatter_flat(b, node.name, x, targets, src, reduce, include_self, out)


@register(aten.scatter)
def _scatter(b, node, x, dim, index, src=None, *, value=None, reduce=None):
    s = src if src is not None else value
    if isinstance(s, bool):
        s = float(s)
    return _scatter_dim(b, node, x, dim, index, s, _REDUCE_NAMES[reduce] if reduce else "replace")


@register(aten.scatter_add)
def _scatter_add(b, node, x, dim, index, src):
    return _scatter_dim(b, node, x, dim, index, src, "sum")


@register(aten.scatter_reduce)
def _scatter_reduce(b, node, x, dim, index, src, reduce, *, include_self=True):
    return _scatter_dim(b, node, x, dim, index, src, _REDUCE_NAMES[reduce], include_self)


def _index_dim(b, node, x, dim, index, source, reduce, include_self=True, alpha=1):
    """index_* ops: index [k] names positions along `dim` for source's slices: a dim scatter with the index
    broadcast to source's shape."""
    out = alloc_like_node(b, node)
    nd = max(len(x.shape), 1)
    dim = norm_dim(dim, nd)
    if isinstance(source, (int, float)):  # index_fill: the source is x's shape with k slices along dim
        shape = list(x.shape) or [1]
        shape[dim] = index.numel
    else:
        shape = list(source.shape) or [1]
    idx_strides = [0] * len(shape)
    idx_strides[dim] = index.strides[0] if index.shape else 0
    idx_view = index.with_view(shape, idx_strides)
    targets = _targets(b, idx_view, dim, list(out.strides) or [1])
    src = source
    if not isinstance(source, (int, float)):
        src = source if source.shape else source.with_view([1], [1])
        if alpha != 1:
            src = ts(b, src, "mul", float(alpha))
    return scatter_flat(b, node.name, x, targets, src, reduce, include_self, out)


@register(aten.index_add)
def _index_add(b, node, x, dim, index, source, *, alpha=1):
    return _index_dim(b, node, x, dim, index, source, "sum", True, alpha)


@register(aten.index_copy)
def _index_copy(b, node, x, dim, index, source):
    return _index_dim(b, node, x, dim, index, source, "replace")


@register(aten.index_fill)
def _index_fill(b, node, x, dim, index, value):
    if isinstance(value, (int, float)):
        return _index_dim(b, node, x, dim, index, float(value), "replace")
    shape = list(x.shape) or [1]  # a 0-dim tensor value, broadcast over the filled slices
    shape[norm_dim(dim, len(shape))] = index.numel
    return _index_dim(b, node, x, dim, index, value.with_view(shape, [0] * len(shape)), "replace")


@register(aten.index_reduce)
def _index_reduce(b, node, x, dim, index, source, reduce, *, include_self=True):
    return _index_dim(b, node, x, dim, index, source, _REDUCE_NAMES[reduce], include_self)


@register(aten.index_put)
def _index_put(b, node, x, indices, values, accumulate=False):
    """x[i0, .., ik-1] = values (or +=) with integer index tensors on the leading dims, or x[mask] = scalar."""
    out = alloc_like_node(b, node)
    indices = list(indices)
    if len(indices) == 1 and indices[0] is not None and indices[0].dtype == torch.bool:
        mask = indices[0]
        if values.numel != 1:
            raise LoweringError("index_put with a boolean mask and more than one value (data-dependent count)")
        mshape = list(mask.shape) + [1] * (len(x.shape) - len(mask.shape))
        m = mask.with_view(mshape, list(mask.strides) + [0] * (len(mshape) - len(mask.shape)))
        v = values.with_view([1] * len(x.shape), [0] * len(x.shape)) if x.shape else values.with_view([], [])
        if accumulate:
            return tt(b, "add", x, select_into(b, m, v, 0.0, _tmp(b, out.shape)), out)
        return select_into(b, m, v, x, out)
    if any(t is None or t.dtype == torch.bool for t in indices):
        raise LoweringError("index_put is supported with integer index tensors on the leading dims, or one boolean "
                            "mask with a single value")
    k = len(indices)
    from neuron_emu.compiler.lowering.common import broadcast_strides
    ishape = list(torch.broadcast_shapes(*[tuple(t.shape) for t in indices]))
    rest = list(x.shape[k:])
    D = 1
    for s in rest:
        D *= s
    lin = None
    acc = D
    for j in range(k - 1, -1, -1):
        t = indices[j].with_view(ishape, broadcast_strides(indices[j], ishape))
        n = x.shape[j]
        term = ts(b, t, "lt", 0.0, op1="mul", s1=float(n))  # negative indices count from the end
        term = ts(b, tt(b, "add", t, term, _tmp(b, ishape)), "mul", float(acc))
        lin = term if lin is None else tt(b, "add", lin, term, _tmp(b, ishape))
        acc *= n
    fullshape = ishape + rest
    lin_full = lin.with_view(fullshape, list(lin.strides) + [0] * len(rest))
    offs = torch.arange(D, dtype=torch.float32).view([1] * len(ishape) + rest) if rest else torch.zeros([1] * len(ishape))
    targets = tt(b, "add", lin_full, b.const(offs), _tmp(b, fullshape))
    src = values.with_view(fullshape, broadcast_strides(values, fullshape))
    src = contiguous(b, src) if src.numel else src
    return scatter_flat(b, node.name, x, targets, src, "sum" if accumulate else "replace", True, out)


def _flat_index(b, x, index):
    """index into x's flattened elements, negative ones counting from the end."""
    idx = index if index.shape else index.with_view([1], [1])
    wrap = ts(b, idx, "lt", 0.0, op1="mul", s1=float(x.numel))
    return tt(b, "add", idx, wrap, _tmp(b, idx.shape))


@register(aten.take)
def _take(b, node, x, index):
    out = alloc_like_node(b, node)
    table = contiguous(b, x).with_view([x.numel, 1], [1, 1]) if x.shape else x.with_view([1, 1], [1, 1])
    gather_rows(b, table, _flat_index(b, x, index), out.with_view([index.numel, 1], [1, 1]))
    return out


@register(aten.put)
def _put(b, node, x, index, source, accumulate=False):
    out = alloc_like_node(b, node)
    src = source if source.shape else source.with_view([1], [1])
    return scatter_flat(b, node.name, x, _flat_index(b, x, index), src, "sum" if accumulate else "replace", True, out)


@register(aten.max_unpool2d, aten.max_unpool3d)
def _max_unpool(b, node, x, indices, output_size, *rest):
    """Each plane's values written at their flat positions in a zero plane of output_size: a scatter whose targets
    are the indices offset by the plane."""
    out = alloc_like_node(b, node)
    nsp = len(output_size)
    L_in = 1
    for s_ in x.shape[-nsp:]:
        L_in *= s_
    L_out = 1
    for s_ in output_size:
        L_out *= s_
    planes = x.numel // max(L_in, 1)
    base = torch.arange(planes, dtype=torch.float32).view(planes, 1) * L_out
    idx = contiguous(b, indices).with_view([planes, L_in], [L_in, 1])
    targets = tt(b, "add", idx, b.const(base), _tmp(b, [planes, L_in]))
    zeros = b.const(torch.zeros(1)).with_view(out.shape, [0] * len(out.shape))
    src = contiguous(b, x).with_view([planes * L_in], [1])
    return scatter_flat(b, node.name, zeros, targets, src, "replace", True, out)
