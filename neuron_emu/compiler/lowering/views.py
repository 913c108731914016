"""Layout ops. Views are free (new strides over the same buffer, as the compiler folds them into
access patterns); materialisation (cat, scatter, non-viewable reshape) is DMA."""
from __future__ import annotations

import torch

from neuron_emu.compiler.builder import TV, out_emu
from neuron_emu.compiler.lowering import register
from neuron_emu.compiler.lowering.common import (alloc_like_node, broadcast_strides, cast_copy,
                                                 contiguous, dma_copy, fill_into, norm_dim, reshape)
from neuron_emu.isa import ActFunc, Alu, DType, Instr, Op

aten = torch.ops.aten


@register(aten.view, aten._unsafe_view, aten.view_copy, aten.reshape, aten._reshape_alias, aten._reshape_alias_copy)
def _view(b, node, x, shape, *_):
    return reshape(b, x, shape)


@register(aten.t, aten.t_copy)
def _t(b, node, x):
    if len(x.shape) < 2:
        return x
    return x.with_view(x.shape[::-1], x.strides[::-1])


@register(aten.transpose, aten.transpose_copy)
def _transpose(b, node, x, d0, d1):
    nd = len(x.shape)
    d0, d1 = norm_dim(d0, nd), norm_dim(d1, nd)
    sh, st = list(x.shape), list(x.strides)
    sh[d0], sh[d1] = sh[d1], sh[d0]
    st[d0], st[d1] = st[d1], st[d0]
    return x.with_view(sh, st)


@register(aten.permute, aten.permute_copy)
def _permute(b, node, x, dims):
    dims = [norm_dim(d, len(x.shape)) for d in dims]
    return x.permuted(dims)


@register(aten.expand, aten.expand_copy)
def _expand(b, node, x, size, *_):
    size = list(size)
    nd = len(size)
    lead = nd - len(x.shape)
    shape = [x.shape[i - lead] if s == -1 else s for i, s in enumerate(size)]
    return x.with_view(shape, broadcast_strides(x, shape))


@register(aten.unsqueeze, aten.unsqueeze_copy)
def _unsqueeze(b, node, x, dim):
    dim = norm_dim(dim, len(x.shape) + 1)
    sh, st = list(x.shape), list(x.strides)
    st_new = st[dim] * sh[dim] if dim < len(sh) else 1
    sh.insert(dim, 1)
    st.insert(dim, st_new)
    return x.with_view(sh, st)


@register(aten.squeeze, aten.squeeze_copy)
def _squeeze(b, node, x, dim=None):
    out_shape = node.outputs[0].shape
    keep = [(s, st) for s, st in zip(x.shape, x.strides)]
    if dim is None:
        keep = [k for k in keep if k[0] != 1]
    else:
        dims = [norm_dim(d, len(x.shape)) for d in (dim if isinstance(dim, (list, tuple)) else [dim])]
        keep = [k for i, k in enumerate(keep) if not (i in dims and k[0] == 1)]
    assert tuple(k[0] for k in keep) == tuple(out_shape)
    return x.with_view([k[0] for k in keep], [k[1] for k in keep])


@register(aten.select, aten.select_copy)
def _select(b, node, x, dim, index):
    dim = norm_dim(dim, len(x.shape))
    index = index + x.shape[dim] if index < 0 else index
    sh, st = list(x.shape), list(x.strides)
    off = x.offset + index * st[dim]
    del sh[dim], st[dim]
    return x.with_view(sh, st, off)


@register(aten.slice, aten.slice_copy)
def _slice(b, node, x, dim=0, start=None, end=None, step=1):
    dim = norm_dim(dim, len(x.shape))
    size = x.shape[dim]
    start, end, step = slice(start, end, step).indices(size)
    n = len(range(start, end, step))
    sh, st = list(x.shape), list(x.strides)
    off = x.offset + start * st[dim]
    sh[dim] = n
    st[dim] = st[dim] * step
    return x.with_view(sh, st, off)


@register(aten.split, aten.split_copy, aten.split_with_sizes, aten.split_with_sizes_copy)
def _split(b, node, x, sizes, dim=0):
    dim = norm_dim(dim, len(x.shape))
    outs, start = [], 0
    for v in node.outputs:
        n = v.shape[dim]
        outs.append(_slice(b, node, x, dim, start, start + n))
        start += n
    return tuple(outs)


@register(aten.unbind, aten.unbind_copy)
def _unbind(b, node, x, dim=0):
    return tuple(_select(b, node, x, dim, i) for i in range(x.shape[norm_dim(dim, len(x.shape))]))


@register(aten.alias, aten.alias_copy, aten.detach, aten.detach_copy, aten.lift_fresh_copy, aten.clone,
          aten.contiguous, aten.lift_fresh)
def _alias(b, node, x, *_, **__):
    # The graph is functional (no mutation), so a clone may share storage with its source.
    return x


@register(aten.as_strided, aten.as_strided_copy)
def _as_strided(b, node, x, size, stride, storage_offset=None):
    if not x.is_contiguous():
        x = contiguous(b, x)
    off = x.offset if storage_offset is None else x.offset + storage_offset
    return x.with_view(size, stride, off)


@register(aten.cat)
def _cat(b, node, tensors, dim=0):
    out = alloc_like_node(b, node)
    dim = norm_dim(dim, len(out.shape))
    pos = 0
    for t in tensors:
        if t.numel == 0 and len(t.shape) == 1:
            continue  # legacy empty tensors
        n = t.shape[dim]
        dst = _slice(b, node, out, dim, pos, pos + n)
        _copy_or_cast(b, t, dst)
        pos += n
    return out


def _copy_or_cast(b, src: TV, dst: TV):
    if src.emu == dst.emu or dst.emu == DType.F32:
        dma_copy(b, src.with_view(dst.shape, broadcast_strides(src, dst.shape)), dst)
    else:
        cast_copy(b, src, dst)


@register(aten.stack)
def _stack(b, node, tensors, dim=0):
    out = alloc_like_node(b, node)
    dim = norm_dim(dim, len(out.shape))
    for i, t in enumerate(tensors):
        _copy_or_cast(b, t, _select(b, node, out, dim, i))
    return out


@register(aten.select_scatter)
def _select_scatter(b, node, base, src, dim, index):
    out = alloc_like_node(b, node)
    dma_copy(b, base, out)
    _copy_or_cast(b, src, _select(b, node, out, dim, index))
    return out


@register(aten.slice_scatter)
def _slice_scatter(b, node, base, src, dim=0, start=None, end=None, step=1):
    out = alloc_like_node(b, node)
    dma_copy(b, base, out)
    _copy_or_cast(b, src, _slice(b, node, out, dim, start, end, step))
    return out


@register(aten.copy)
def _copy(b, node, dst, src, *_):
    out = alloc_like_node(b, node)
    _copy_or_cast(b, src, out)
    return out


@register(aten._to_copy, aten.to)
def _to_copy(b, node, x, *args, **kwargs):
    v = node.outputs[0]
    dst_dtype = v.dtype
    if dst_dtype == x.dtype:
        return x
    emu = out_emu(b, dst_dtype)
    if dst_dtype == torch.bool:
        out = b.alloc(x.shape, dst_dtype)
        fields = dict(alu0=Alu.Ne, reverse0=0, alu1=-1, reverse1=0, in_dtype=x.emu, out_dtype=DType.F32,
                      scalar0=0.0, scalar1=0.0)
        b.emit(Instr(Op.TensorScalar, [x.buf, out.buf], fields, _layout2(x, out)), [x], [out])
        return out
    if not dst_dtype.is_floating_point and x.dtype.is_floating_point:
        out = b.alloc(x.shape, dst_dtype)
        fields = dict(func=ActFunc.Trunc, in_dtype=x.emu, out_dtype=DType.F32, scale=1.0, bias=0.0, param=0.0)
        b.emit(Instr(Op.Activation, [x.buf, out.buf], fields, _layout2(x, out)), [x], [out])
        return out
    if emu == DType.F32 or emu == x.emu:
        return x.with_dtype(dst_dtype, emu if emu != DType.F32 else x.emu)  # widening: values already exact
    out = b.alloc(x.shape, dst_dtype, emu)
    cast_copy(b, x, out)
    return out


def _layout2(x: TV, out: TV):
    from neuron_emu.compiler.lowering.common import strided_layout
    return strided_layout("copy", out.shape, [(x.offset, broadcast_strides(x, out.shape)), (out.offset, out.strides)])


@register(aten.constant_pad_nd)
def _constant_pad(b, node, x, pad, value=0):
    """F.pad(mode="constant"): a GpSimd fill of the value, then a DMA copy of the (cropped, for negative pads) input
    into the interior. `pad` lists (before, after) pairs from the last dim backwards."""
    return pad_into(b, x, pad, value, alloc_like_node(b, node))


def pad_into(b, x, pad, value, out):
    nd = len(x.shape)
    src_off, dst_off, shape = x.offset, out.offset, list(x.shape)
    padded = False
    for i in range(len(pad) // 2):
        d = nd - 1 - i
        lo, hi = int(pad[2 * i]), int(pad[2 * i + 1])
        padded |= lo > 0 or hi > 0
        src_off += max(-lo, 0) * x.strides[d]
        dst_off += max(lo, 0) * out.strides[d]
        shape[d] = x.shape[d] - max(-lo, 0) - max(-hi, 0)
    if padded:
        fill_into(b, out, value)
    if all(s > 0 for s in shape):
        _copy_or_cast(b, x.with_view(shape, x.strides, src_off), out.with_view(shape, out.strides, dst_off))
    return out


@register(aten.im2col)
def _im2col(b, node, x, kernel_size, dilation, padding, stride):
    """F.unfold: [N, C, H, W] -> [N, C*kh*kw, oh*ow], one strided DMA copy per kernel offset (after a pad)."""
    out = alloc_like_node(b, node)
    batched = len(x.shape) == 4
    if not batched:
        x = x.with_view([1] + list(x.shape), [0] + list(x.strides))
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = kernel_size, dilation, padding, stride
    N, C, H, W = x.shape
    if ph or pw:
        x = pad_into(b, x, [pw, pw, ph, ph], 0.0, b.alloc([N, C, H + 2 * ph, W + 2 * pw], x.dtype, x.emu))
        H, W = H + 2 * ph, W + 2 * pw
    oh, ow = (H - dh * (kh - 1) - 1) // sh + 1, (W - dw * (kw - 1) - 1) // sw + 1
    L = oh * ow
    sN, sC, sH, sW = x.strides
    for i in range(kh):
        for j in range(kw):
            src = x.with_view([N, C, oh, ow], [sN, sC, sh * sH, sw * sW], x.offset + i * dh * sH + j * dw * sW)
            dst = out.with_view([N, C, oh, ow], [C * kh * kw * L, kh * kw * L, ow, 1], out.offset + (i * kw + j) * L)
            _copy_or_cast(b, src, dst)
    return out
