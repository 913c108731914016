"""Order statistics without a sort (aten::sort itself is rejected: rejected.py), by comparisons, which the real
compiler lowers to elementwise compares and reductions:
- topk: each element's rank = how many elements beat it (greater, or equal and earlier: eager's stable order),
  then the element of rank r is picked by a one-hot select and a sum;
- cummax/cummin: a VectorE max/min scan; the index is the last position <= i holding that running value;
- logcumsumexp: the row max, a cumulative sum of exp(x - max), its log, plus the max;
- searchsorted/bucketize: a count of boundaries below (or not above) each value.
Comparison matrices are n x n per row: MAX_PAIRS bounds them."""
from __future__ import annotations

import torch

from neuron_emu.compiler.lowering import register
from neuron_emu.compiler.lowering.common import LoweringError, alloc_like_node, contiguous, dma_copy, fill_into, norm_dim
from neuron_emu.compiler.lowering.elementwise import select_into
from neuron_emu.compiler.lowering.math import _tmp, act, tt
from neuron_emu.compiler.lowering.reduce import reduce_into
from neuron_emu.isa import ActFunc, Alu, Instr, Op, ReduceOp

aten = torch.ops.aten
MAX_PAIRS = 1 << 22


def _rows_last(b, x, dim):
    """x with `dim` moved last, contiguous, as [R, n]; and the permutation."""
    nd = len(x.shape)
    perm = [d for d in range(nd) if d != dim] + [dim]
    xt = contiguous(b, x.permuted(perm))
    n = x.shape[dim]
    return xt.with_view([xt.numel // max(n, 1), n], [n, 1]), perm, xt.shape


def _back(b, t, perm, shape_last, out):
    """t [R, k] (rows in perm order) -> out (dim restored)."""
    nd = len(perm)
    tv = t.with_view(list(shape_last[:-1]) + [t.shape[1]], _contig(list(shape_last[:-1]) + [t.shape[1]]))
    inv = [perm.index(d) for d in range(nd)]
    dma_copy(b, tv.permuted(inv), out)
    return out


def _contig(shape):
    st, acc = [], 1
    for s in reversed(shape):
        st.append(acc)
        acc *= s
    return list(reversed(st))


def _guard(name, R, n, m):
    if R * n * m > MAX_PAIRS:
        raise LoweringError(f"{name}: {R} rows of {n}x{m} comparisons exceed this lowering's {MAX_PAIRS}")


def rank_along_rows(b, x2, largest):
    """rank[r, i] = #{j : x_j beats x_i} for x2 [R, n]: greater (smaller) values, and equal ones earlier (eager's
    stable order). NaN ranks as the largest value, as eager's topk orders it; NaNs among themselves by position."""
    R, n = x2.shape
    sh = [R, n, n]
    xi = x2.with_view(sh, [n, 1, 0])  # element i
    xj = x2.with_view(sh, [n, 0, 1])  # against every j
    nan = act(b, x2, ActFunc.IsNan)
    ni, nj = nan.with_view(sh, [n, 1, 0]), nan.with_view(sh, [n, 0, 1])
    beats = tt(b, "gt" if largest else "lt", xj, xi, _tmp(b, sh))  # false whenever either is nan
    nan_beats = tt(b, "gt", nj, ni, _tmp(b, sh)) if largest else tt(b, "gt", ni, nj, _tmp(b, sh))
    beats = tt(b, "or", beats, nan_beats, _tmp(b, sh))
    same = tt(b, "or", tt(b, "eq", xj, xi, _tmp(b, sh)), tt(b, "and", nj, ni, _tmp(b, sh)), _tmp(b, sh))
    earlier = b.const(torch.ones(n, n).tril(-1).view(1, n, n))  # j < i
    ties = tt(b, "mul", same, earlier, _tmp(b, sh))
    return reduce_into(b, tt(b, "add", beats, ties, _tmp(b, sh)), [2], ReduceOp.Sum, _tmp(b, [R, n]))


def _rank_prologue(b, node, x, dim, name):
    """topk / k-th value / median: the two outputs, and (x with `dim` last as [R, n] rows, perm, shape) to rank;
    None for a 0-dim x, whose outputs are then already written (the value itself, at index 0)."""
    vals_out, idx_out = alloc_like_node(b, node, 0), alloc_like_node(b, node, 1)
    if not x.shape:
        dma_copy(b, x, vals_out)
        fill_into(b, idx_out, 0.0)
        return vals_out, idx_out, None
    rows = _rows_last(b, x, norm_dim(dim, len(x.shape)))
    R, n = rows[0].shape
    _guard(name, R, n, n)
    return vals_out, idx_out, rows


@register(aten.topk)
def _topk(b, node, x, k, dim=-1, largest=True, sorted=True):
    vals_out, idx_out, rows = _rank_prologue(b, node, x, dim, "topk")
    if rows is None:
        return vals_out, idx_out
    x2, perm, shape_last = rows
    R, n = x2.shape
    if k == 0 or R == 0:
        return vals_out, idx_out
    rank = rank_along_rows(b, x2, largest)
    ranks = b.const(torch.arange(k, dtype=torch.float32).view(1, k, 1))
    pick = tt(b, "eq", rank.with_view([R, k, n], [n, 0, 1]), ranks, _tmp(b, [R, k, n]))
    vals = reduce_into(b, select_into(b, pick, x2.with_view([R, k, n], [n, 0, 1]), 0.0, _tmp(b, [R, k, n])), [2],
                       ReduceOp.Sum, _tmp(b, [R, k]))
    pos = b.const(torch.arange(n, dtype=torch.float32).view(1, 1, n))
    idx = reduce_into(b, select_into(b, pick, pos, 0.0, _tmp(b, [R, k, n])), [2], ReduceOp.Sum, _tmp(b, [R, k]))
    _back(b, vals, perm, shape_last, vals_out)
    _back(b, idx, perm, shape_last, idx_out)
    return vals_out, idx_out


@register(aten.cummax, aten.cummin)
def _cummax(b, node, x, dim):
    vals_out, idx_out = alloc_like_node(b, node, 0), alloc_like_node(b, node, 1)
    is_max = node.target.overloadpacket is aten.cummax
    if not x.shape:
        dma_copy(b, x, vals_out)
        fill_into(b, idx_out, 0.0)
        return vals_out, idx_out
    d = norm_dim(dim, len(x.shape))
    x2, perm, shape_last = _rows_last(b, x, d)
    R, n = x2.shape
    _guard(node.name, R, n, n)
    run = _tmp(b, [R, n])
    b.emit(Instr(Op.Scan, [x2.buf, run.buf], dict(outer=R, R=n, inner=1, alu=Alu.Max if is_max else Alu.Min,
                                                   in_dtype=x2.emu, out_dtype=run.emu)), [x2], [run])
    # index: the last j <= i with x_j == running value_i (eager updates on >= / <=)
    hit = tt(b, "eq", x2.with_view([R, n, n], [n, 0, 1]), run.with_view([R, n, n], [n, 1, 0]), _tmp(b, [R, n, n]))
    upto = b.const(torch.ones(n, n).tril().view(1, n, n))
    hit = tt(b, "mul", hit, upto, _tmp(b, [R, n, n]))
    pos = b.const(torch.arange(n, dtype=torch.float32).view(1, 1, n))
    idx = reduce_into(b, select_into(b, hit, pos, -1.0, _tmp(b, [R, n, n])), [2], ReduceOp.Max, _tmp(b, [R, n]))
    _back(b, run, perm, shape_last, vals_out)
    _back(b, idx, perm, shape_last, idx_out)
    return vals_out, idx_out


@register(aten.logcumsumexp)
def _logcumsumexp(b, node, x, dim):
    out = alloc_like_node(b, node)
    if not x.shape:
        dma_copy(b, x, out)
        return out
    d = norm_dim(dim, len(x.shape))
    x2, perm, shape_last = _rows_last(b, x, d)
    R, n = x2.shape
    if n == 0:
        return out
    m = reduce_into(b, x2, [1], ReduceOp.Max, _tmp(b, [R, 1]))
    m = select_into(b, act(b, m, ActFunc.IsInf), 0.0, m, _tmp(b, [R, 1]))
    e = act(b, tt(b, "sub", x2, m, _tmp(b, [R, n])), ActFunc.Exp)
    cs = _tmp(b, [R, n])
    b.emit(Instr(Op.Scan, [e.buf, cs.buf], dict(outer=R, R=n, inner=1, alu=Alu.Add, in_dtype=e.emu,
                                                 out_dtype=cs.emu)), [e], [cs])
    r = tt(b, "add", act(b, cs, ActFunc.Log), m, _tmp(b, [R, n]))
    return _back(b, r, perm, shape_last, out)


def _count_below(b, node, seq, values, right, out):
    """out[..., i] = #{j : seq[..., j] < v_i} (<= when right), seq's leading dims matching values'."""
    n = seq.shape[-1]
    lead = list(values.shape[:-1]) if len(seq.shape) > 1 else []
    m = values.shape[-1] if len(seq.shape) > 1 else values.numel
    R = 1
    for s in lead:
        R *= s
    _guard(node.name, R, m, n)
    v = contiguous(b, values).with_view([R, m, 1], [m, 1, 0]) if values.shape else values.with_view([1, 1, 1], [0, 0, 0])
    s = contiguous(b, seq).with_view([R if lead else 1, 1, n], [n if lead else 0, 0, 1])
    cmp = tt(b, "le" if right else "lt", s.with_view([R, m, n], [s.strides[0], 0, 1]), v.with_view([R, m, n], [v.strides[0], v.strides[1], 0]),
             _tmp(b, [R, m, n]))
    cnt = reduce_into(b, cmp, [2], ReduceOp.Sum, _tmp(b, [R, m]))
    dma_copy(b, cnt.with_view(out.shape, out.strides) if out.shape else cnt.with_view([], []), out)
    return out


@register(aten.searchsorted)
def _searchsorted(b, node, seq, values, *, out_int32=False, right=False, side=None, sorter=None):
    if sorter is not None:
        raise LoweringError("searchsorted with a sorter (a sort permutation) is not supported")
    if isinstance(values, (int, float)):
        values = b.const(torch.tensor(float(values)))
    right = right or side == "right"
    return _count_below(b, node, seq, values, right, alloc_like_node(b, node))


@register(aten.bucketize)
def _bucketize(b, node, x, boundaries, *, out_int32=False, right=False):
    if isinstance(x, (int, float)):
        x = b.const(torch.tensor(float(x)))
    out = alloc_like_node(b, node)
    flat = out.with_view([out.numel], [1]) if out.shape else out
    xf = contiguous(b, x).with_view([x.numel], [1]) if x.shape else x
    _count_below(b, node, boundaries, xf, right, flat)
    return out


def _pick_rank(b, x2, r, largest=False):
    """(values, indices) [R, 1] of the element of rank r in each row of x2 [R, n]."""
    R, n = x2.shape
    rank = rank_along_rows(b, x2, largest)
    pick = tt(b, "eq", rank, float(r), _tmp(b, [R, n]))
    vals = reduce_into(b, select_into(b, pick, x2, 0.0, _tmp(b, [R, n])), [1], ReduceOp.Sum, _tmp(b, [R, 1]))
    pos = b.const(torch.arange(n, dtype=torch.float32).view(1, n))
    idx = reduce_into(b, select_into(b, pick, pos, 0.0, _tmp(b, [R, n])), [1], ReduceOp.Sum, _tmp(b, [R, 1]))
    return vals, idx


def _nan_propagates(b, x2, vals, idx):
    """median: a row holding nan has median nan, at its first nan."""
    R, n = x2.shape
    nan = act(b, x2, ActFunc.IsNan)
    any_nan = reduce_into(b, nan, [1], ReduceOp.Max, _tmp(b, [R, 1]))
    pos = b.const(torch.arange(n, dtype=torch.float32).view(1, n))
    first = reduce_into(b, select_into(b, nan, pos, float(n), _tmp(b, [R, n])), [1], ReduceOp.Min, _tmp(b, [R, 1]))
    return (select_into(b, any_nan, float("nan"), vals, _tmp(b, [R, 1])),
            select_into(b, any_nan, first, idx, _tmp(b, [R, 1])))


def _kth_dim(b, node, x, r_of_n, dim, nan_median):
    vals_out, idx_out, rows = _rank_prologue(b, node, x, dim, node.name)
    if rows is None:
        return vals_out, idx_out
    x2 = rows[0]
    n = x2.shape[1]
    vals, idx = _pick_rank(b, x2, r_of_n(n))
    if nan_median:
        vals, idx = _nan_propagates(b, x2, vals, idx)
    from neuron_emu.isa import contiguous_strides
    dma_copy(b, vals.with_view(vals_out.shape, contiguous_strides(vals_out.shape)), vals_out)
    dma_copy(b, idx.with_view(idx_out.shape, contiguous_strides(idx_out.shape)), idx_out)
    return vals_out, idx_out


@register(aten.kthvalue)
def _kthvalue(b, node, x, k, dim=-1, keepdim=False):
    return _kth_dim(b, node, x, lambda n: k - 1, dim, False)


@register(aten.median.dim)
def _median_dim(b, node, x, dim, keepdim=False):
    return _kth_dim(b, node, x, lambda n: (n - 1) // 2, dim, True)


@register(aten.median.default)
def _median(b, node, x):
    out = alloc_like_node(b, node)
    if x.numel == 0:
        raise LoweringError("median of an empty tensor")
    flat = contiguous(b, x).with_view([1, x.numel], [x.numel, 1]) if x.shape else x.with_view([1, 1], [1, 1])
    _guard(node.name, 1, x.numel, x.numel)
    vals, idx = _pick_rank(b, flat, (x.numel - 1) // 2)
    vals, _ = _nan_propagates(b, flat, vals, idx)
    dma_copy(b, vals.with_view([], []), out)
    return out
