"""Gathers (GpSimdE; DMA with indirect addressing on NeuronCore-v1): embedding lookups, index_select /
single-index advanced indexing and torch.gather."""
from __future__ import annotations

import torch

from neuron_emu.compiler.lowering import register
from neuron_emu.compiler.lowering.common import LoweringError, alloc_like_node, contiguous, dma_copy, norm_dim
from neuron_emu.isa import Instr, Op

aten = torch.ops.aten


def gather_rows(b, table, index, out):
    """out[i, :] = table[index[i], :] with table viewed as [rows, D]."""
    table = contiguous(b, table)
    if table.offset:
        from neuron_emu.compiler.lowering.norm import _own_buffer
        table = _own_buffer(b, table)
    index = contiguous(b, index)
    if index.offset:
        from neuron_emu.compiler.lowering.norm import _own_buffer
        index = _own_buffer(b, index)
    rows = table.shape[0]
    D = table.numel // max(rows, 1)
    op = Op.Gather if b.has_engine("GpSimdE") else Op.DmaGather  # v1: DMA with indirect addressing
    b.emit(Instr(op, [table.buf, index.buf, out.buf], dict(n=index.numel, rows=rows, D=D, in_dtype=table.emu)),
           [table, index], [out])
    return out


@register(aten.embedding)
def _embedding(b, node, weight, indices, padding_idx=-1, scale_grad_by_freq=False, sparse=False):
    return gather_rows(b, weight, indices, alloc_like_node(b, node))


@register(aten.index_select)
def _index_select(b, node, x, dim, index):
    if not x.shape:  # a 0-d tensor is indexed as a 1-element vector (index 0 is its only valid index)
        x = x.with_view([1], [1])
        return gather_rows(b, x, index, alloc_like_node(b, node).with_view([index.numel], [1])).with_view(
            list(node.outputs[0].shape), [1] * len(node.outputs[0].shape))
    dim = norm_dim(dim, len(x.shape))
    if dim != 0:
        perm = [dim] + [d for d in range(len(x.shape)) if d != dim]
        xt = x.permuted(perm)
        tmp = b.alloc([index.numel] + [x.shape[d] for d in perm[1:]], x.dtype, x.emu)
        gather_rows(b, xt, index, tmp)
        out = alloc_like_node(b, node)
        inv = [perm.index(d) for d in range(len(perm))]
        dma_copy(b, tmp.permuted(inv), out)
        return out
    return gather_rows(b, x, index, alloc_like_node(b, node))


@register(aten.index)
def _index(b, node, x, indices):
    """x[:, ..., i0, i1, ..., ik-1] with integer index tensors (broadcast together) on k adjacent dims after p
    leading full slices (None): the indexed dims move to the front, a row gather of that view as
    [prod(shape[p:p+k]), D] at the linear index sum(i_j * stride_j), and the result's index dims move back to p."""
    from neuron_emu.compiler.lowering.elementwise import binary_into, tensor_scalar_into

    indices = list(indices)
    while indices and indices[-1] is None:  # trailing full slices
        indices.pop()
    p = 0
    while p < len(indices) and indices[p] is None:
        p += 1
    idx = indices[p:]
    k = len(idx)
    if not idx or any(t is None for t in idx) or any(t.dtype == torch.bool for t in idx):
        raise LoweringError("advanced indexing is supported with integer index tensors on adjacent dims "
                            "(after leading full slices) only")
    nd = len(x.shape)
    out = alloc_like_node(b, node)
    idx_shape = list(out.shape[p:len(out.shape) - (nd - p - k)])
    if p:  # move the indexed dims to the front
        perm = list(range(p, p + k)) + list(range(p)) + list(range(p + k, nd))
        x = x.permuted(perm)
    x = contiguous(b, x)
    strides, acc = [], 1
    for s in reversed(x.shape[:k]):
        strides.append(acc)
        acc *= s
    strides.reverse()
    linear = None
    for t, st, n in zip(idx, strides, x.shape[:k]):
        term = b.alloc(idx_shape, torch.float32)
        tensor_scalar_into(b, t, term, "mul", float(st))
        wrap = tensor_scalar_into(b, t, b.alloc(idx_shape, torch.float32), "lt", 0.0, op1="mul", s1=float(n * st))
        term = binary_into(b, "add", term, wrap, b.alloc(idx_shape, torch.float32))  # negative indices count from the end
        if linear is None:
            linear = term
        else:
            acc_tv = b.alloc(idx_shape, torch.float32)
            binary_into(b, "add", linear, term, acc_tv)
            linear = acc_tv
    rows = 1
    for s in x.shape[:k]:
        rows *= s
    D = x.numel // max(rows, 1)
    if not p:
        return gather_rows(b, x.with_view([rows, D], [D, 1]), linear, out)
    rest = list(x.shape[k:])  # leading dims, then the dims after the indexed block
    tmp = gather_rows(b, x.with_view([rows, D], [D, 1]), linear, b.alloc(idx_shape + rest, x.dtype, x.emu))
    m = len(idx_shape)
    perm = list(range(m, m + p)) + list(range(m)) + list(range(m + p, m + len(rest)))
    dma_copy(b, tmp.permuted(perm), out)
    return out


@register(aten.gather)
def _gather(b, node, x, dim, index, *, sparse_grad=False):
    """out[i..] = x[i.. with i_dim replaced by index[i..]]: one GpSimd Gather of single elements at the linear
    index index * stride_dim + base, where base (the other coordinates' offsets) is a compile-time constant."""
    from neuron_emu.compiler.lowering.elementwise import binary_into, tensor_scalar_into

    nd = max(len(x.shape), 1)
    dim = norm_dim(dim, nd)
    if x.numel > 2 ** 24:
        raise LoweringError(f"gather from {x.numel} elements: linear indices past 2^24 are not exact in fp32")
    x = contiguous(b, x)
    shape = list(index.shape) or [1]
    xstrides = list(x.strides) or [1]
    base = torch.zeros(shape, dtype=torch.float32)
    for d, (n, st) in enumerate(zip(shape, xstrides)):
        if d != dim:
            coord = torch.arange(n, dtype=torch.float32) * st
            base = base + coord.view([n if i == d else 1 for i in range(len(shape))])
    scaled = tensor_scalar_into(b, index, b.alloc(index.shape, torch.float32), "mul", float(xstrides[dim]))
    linear = binary_into(b, "add", scaled, b.const(base.reshape(index.shape)), b.alloc(index.shape, torch.float32))
    return gather_rows(b, x.with_view([x.numel, 1], [1, 1]), linear, alloc_like_node(b, node))
