"""Layout ops that reorder or replicate elements: flip and roll (a GpSimd row gather with a compile-time index per
dim, since access patterns have non-negative strides), repeat (a broadcast view copied by DMA), triangular masks
(a compile-time mask and a select), diagonals (strided views), diag_embed / diagonal_scatter (fill + DMA into a
diagonal view), unfold windows (views), pixel (un)shuffle (reshape + permute copies)."""
from __future__ import annotations

import torch

from neuron_emu.compiler.lowering import register
from neuron_emu.compiler.lowering.common import alloc_like_node, contiguous, dma_copy, fill_into, norm_dim, reshape
from neuron_emu.compiler.lowering.elementwise import select_into
from neuron_emu.compiler.lowering.indexing import gather_rows
from neuron_emu.compiler.lowering.views import _copy_or_cast
from neuron_emu.isa import Instr, Op

aten = torch.ops.aten


def take_along(b, x, dim, index, out=None):
    """x with its `dim` reordered by a compile-time index list: the dim moves to the front, a row gather,
    and back (DMA)."""
    nd = len(x.shape)
    perm = [dim] + [d for d in range(nd) if d != dim]
    xt = x.permuted(perm)
    idx = b.const(torch.tensor(index, dtype=torch.float32))
    tmp = b.alloc([len(index)] + list(xt.shape[1:]), x.dtype, x.emu)
    gather_rows(b, xt, idx, tmp)
    inv = [perm.index(d) for d in range(nd)]
    back = tmp.permuted(inv)
    if out is None:
        return back
    dma_copy(b, back, out)
    return out


@register(aten.flip)
def _flip(b, node, x, dims):
    out = alloc_like_node(b, node)
    if not x.shape or x.numel == 0:
        dma_copy(b, x, out)
        return out
    dims = sorted({norm_dim(d, len(x.shape)) for d in dims})
    for i, d in enumerate(dims):
        x = take_along(b, x, d, list(range(x.shape[d] - 1, -1, -1)), out if i == len(dims) - 1 else None)
    if not dims:
        dma_copy(b, x, out)
    return out


@register(aten.roll)
def _roll(b, node, x, shifts, dims=()):
    out = alloc_like_node(b, node)
    shifts = list(shifts) if isinstance(shifts, (list, tuple)) else [shifts]
    dims = list(dims) if isinstance(dims, (list, tuple)) else [dims]
    if x.numel == 0:
        return out
    if not dims:  # roll of the flattened tensor
        flat = contiguous(b, x).with_view([x.numel], [1])
        n = x.numel
        take_along(b, flat, 0, [(i - shifts[0]) % n for i in range(n)], out.with_view([n], [1]))
        return out
    for i, (s, d) in enumerate(zip(shifts, dims)):
        d = norm_dim(d, len(x.shape))
        n = x.shape[d]
        x = take_along(b, x, d, [(j - s) % n for j in range(n)], out if i == len(dims) - 1 else None)
    return out


@register(aten.repeat)
def _repeat(b, node, x, repeats):
    """out viewed as [r0, s0, r1, s1, ...] is x broadcast along the r dims: one DMA copy."""
    out = alloc_like_node(b, node)
    if out.numel == 0:
        return out
    lead = len(repeats) - len(x.shape)
    shape = [1] * lead + list(x.shape)
    strides = [0] * lead + list(x.strides)
    src_shape, src_strides, dst_shape = [], [], []
    for r, s, st in zip(repeats, shape, strides):
        src_shape += [r, s]
        src_strides += [0, st]
    ost = []
    acc = 1
    for r, s in reversed(list(zip(repeats, shape))):
        ost = [acc * s, acc] + ost
        acc *= r * s
    dst_shape = src_shape
    keep = [i for i, n in enumerate(dst_shape) if n != 1]
    dst = out.with_view([dst_shape[i] for i in keep], [ost[i] for i in keep])
    src = x.with_view([src_shape[i] for i in keep], [src_strides[i] for i in keep])
    _copy_or_cast(b, src, dst)
    return out


@register(aten.tril, aten.triu)
def _tril(b, node, x, diagonal=0):
    out = alloc_like_node(b, node)
    r, c = x.shape[-2], x.shape[-1]
    ones = torch.ones(r, c, dtype=torch.bool)
    keep = ones.tril(diagonal) if node.target.overloadpacket is aten.tril else ones.triu(diagonal)
    return select_into(b, b.const(keep), x, 0.0, out)


def diagonal_view(x, offset=0, dim1=0, dim2=1):
    nd = len(x.shape)
    d1, d2 = norm_dim(dim1, nd), norm_dim(dim2, nd)
    n1, n2 = x.shape[d1], x.shape[d2]
    if offset >= 0:
        n = max(min(n1, n2 - offset), 0)
        off = x.offset + offset * x.strides[d2] if n else x.offset
    else:
        n = max(min(n1 + offset, n2), 0)
        off = x.offset - offset * x.strides[d1] if n else x.offset
    keep = [d for d in range(nd) if d not in (d1, d2)]
    return x.with_view([x.shape[d] for d in keep] + [n], [x.strides[d] for d in keep] + [x.strides[d1] + x.strides[d2]],
                       off)


@register(aten.diagonal, aten.diagonal_copy)
def _diagonal(b, node, x, offset=0, dim1=0, dim2=1):
    return diagonal_view(x, offset, dim1, dim2)


@register(aten.diag_embed)
def _diag_embed(b, node, x, offset=0, dim1=-2, dim2=-1):
    out = alloc_like_node(b, node)
    fill_into(b, out, 0.0)
    if x.numel:
        _copy_or_cast(b, x, diagonal_view(out, offset, dim1, dim2))
    return out


@register(aten.diagonal_scatter)
def _diagonal_scatter(b, node, base, src, offset=0, dim1=0, dim2=1):
    out = alloc_like_node(b, node)
    dma_copy(b, base, out)
    if src.numel:
        _copy_or_cast(b, src, diagonal_view(out, offset, dim1, dim2))
    return out


@register(aten.as_strided_scatter)
def _as_strided_scatter(b, node, base, src, size, stride, storage_offset=None):
    out = alloc_like_node(b, node)
    dma_copy(b, base, out)
    view = out.with_view(size, stride, out.offset + (storage_offset or 0))
    if src.numel:
        _copy_or_cast(b, src, view)
    return out


@register(aten.unfold, aten.unfold_copy)
def _unfold(b, node, x, dim, size, step):
    if not x.shape:
        return x.with_view([size], [1])
    d = norm_dim(dim, len(x.shape))
    sh, st = list(x.shape), list(x.strides)
    n = (sh[d] - size) // step + 1
    return x.with_view(sh[:d] + [n] + sh[d + 1:] + [size], st[:d] + [st[d] * step] + st[d + 1:] + [st[d]])


@register(aten.narrow_copy, aten.narrow)
def _narrow(b, node, x, dim, start, length):
    from neuron_emu.compiler.lowering.views import _slice
    d = norm_dim(dim, len(x.shape))
    start = start + x.shape[d] if start < 0 else start
    return _slice(b, node, x, d, start, start + length)


@register(aten.unsafe_split, aten.unsafe_split_with_sizes, aten.unsafe_chunk)
def _unsafe_split(b, node, x, sizes, dim=0):
    from neuron_emu.compiler.lowering.views import _split
    return _split(b, node, x, sizes, dim)


@register(aten.pixel_shuffle, aten.pixel_unshuffle)
def _pixel_shuffle(b, node, x, r):
    """[.., C*r*r, H, W] <-> [.., C, H*r, W*r]: one reshape and permuted copy."""
    out = alloc_like_node(b, node)
    lead = list(x.shape[:-3])
    L = len(lead)
    C, H, W = x.shape[-3:]
    if node.target.overloadpacket is aten.pixel_shuffle:
        oc = C // (r * r)
        v = reshape(b, x, lead + [oc, r, r, H, W])
        perm = list(range(L)) + [L, L + 3, L + 1, L + 4, L + 2]
    else:
        v = reshape(b, x, lead + [C, H // r, r, W // r, r])
        perm = list(range(L)) + [L, L + 2, L + 4, L + 1, L + 3]
    src = v.permuted(perm)
    dst = reshape(b, out, src.shape)
    dma_copy(b, src, dst)
    return out


@register(aten.channel_shuffle, aten.native_channel_shuffle)
def _channel_shuffle(b, node, x, groups):
    out = alloc_like_node(b, node)
    N, C = x.shape[0], x.shape[1]
    rest = list(x.shape[2:])
    v = reshape(b, x, [N, groups, C // groups] + rest)
    perm = [0, 2, 1] + list(range(3, 3 + len(rest)))
    src = v.permuted(perm)
    dma_copy(b, src, reshape(b, out, src.shape))
    return out


@register(aten.block_diag)
def _block_diag(b, node, tensors):
    out = alloc_like_node(b, node)
    fill_into(b, out, 0.0)
    r = c = 0
    for t in tensors:
        if len(t.shape) == 2:
            t2 = t
        elif len(t.shape) == 1:
            t2 = t.with_view([1, t.shape[0]], [0, t.strides[0]])
        else:
            t2 = t.with_view([1, 1], [0, 0])
        shape = list(t2.shape)
        if t2.numel:
            dst = out.with_view(shape, out.strides, out.offset + r * out.strides[0] + c * out.strides[1])
            _copy_or_cast(b, t2, dst)
        r, c = r + shape[0], c + shape[1]
    return out


@register(aten.rot90)
def _rot90(b, node, x, k=1, dims=(0, 1)):
    """Eager: k=1 flips dims[1] then swaps the dims, k=2 flips both, k=3 flips dims[0] then swaps."""
    out = alloc_like_node(b, node)
    d0, d1 = (norm_dim(d, len(x.shape)) for d in dims)
    k %= 4
    if k == 0 or x.numel == 0:
        dma_copy(b, x, out)
        return out
    if k == 2:
        take_along(b, take_along(b, x, d0, list(range(x.shape[d0] - 1, -1, -1))), d1,
                   list(range(x.shape[d1] - 1, -1, -1)), out)
        return out
    fd = d1 if k == 1 else d0
    f = take_along(b, x, fd, list(range(x.shape[fd] - 1, -1, -1)))
    sh, st = list(f.shape), list(f.strides)
    sh[d0], sh[d1], st[d0], st[d1] = sh[d1], sh[d0], st[d1], st[d0]
    dma_copy(b, f.with_view(sh, st), out)
    return out
