"""Convolutions beyond the Conv2d instruction's native 1-D/2-D form, rewritten onto it:
- 3-D: one Conv2d per depth tap kd over all output depths at once (the input slab for tap kd viewed with the
  depth stride, depths folded into the batch), accumulated in fp32 on VectorE and rounded once into the result;
- transposed (1-D/2-D/3-D): the input spread out by the stride into a zero-filled, padded buffer (GpSimd fill +
  strided DMA), then an ordinary stride-1 convolution with the kernel flipped and its in/out channels swapped per
  group (gather + DMA permute), as the adjoint of the forward convolution."""
from __future__ import annotations

import torch

from neuron_emu.compiler.lowering.common import alloc_like_node, contiguous, dma_copy, fill_into, reshape
from neuron_emu.compiler.lowering.math import tt
from neuron_emu.compiler.lowering.matmul import emit_conv
from neuron_emu.compiler.lowering.shape import take_along
from neuron_emu.isa import DType, Instr, Op


def conv3d_into(b, x, w, bias, stride, padding, dilation, groups, out):
    N, C, D, H, W = x.shape
    O, _, KD = w.shape[0], w.shape[1], w.shape[2]
    OD, OH, OW = out.shape[2:]
    sd, pd, dd = stride[0], padding[0], dilation[0]
    if pd:
        xp = b.alloc([N, C, D + 2 * pd, H, W], x.dtype, x.emu)
        fill_into(b, xp, 0.0)
        dma_copy(b, x, xp.with_view(x.shape, xp.strides, xp.offset + pd * xp.strides[2]))
        x = xp
    acc = None
    for kd in range(KD):
        sN, sC, sD, sH, sW = x.strides
        slab = x.with_view([N, OD, C, H, W], [sN, sd * sD, sC, sH, sW], x.offset + kd * dd * sD)
        xs = b.alloc([N, OD, C, H, W], x.dtype, x.emu)
        dma_copy(b, slab, xs)
        wk = contiguous(b, w.with_view([O, w.shape[1], w.shape[3], w.shape[4]],
                                       [w.strides[0], w.strides[1], w.strides[3], w.strides[4]], w.offset + kd * w.strides[2]))
        r = b.alloc([N * OD, O, OH, OW], torch.float32, DType.F32)  # taps accumulate in fp32, as one conv's sum
        emit_conv(b, xs.with_view([N * OD, C, H, W], [C * H * W, H * W, W, 1]), wk, bias if kd == 0 else None,
                  stride[1:], padding[1:], dilation[1:], groups, r)
        acc = r if acc is None else tt(b, "add", acc, r, b.alloc(r.shape, torch.float32, DType.F32))
    a5 = acc.with_view([N, OD, O, OH, OW], [OD * O * OH * OW, O * OH * OW, OH * OW, OW, 1])
    dma_copy(b, a5.with_view([N, O, OD, OH, OW], [a5.strides[0], a5.strides[2], a5.strides[1], a5.strides[3], a5.strides[4]]), out)
    return out


def conv_into(b, x, w, bias, stride, padding, dilation, groups, out):
    if len(x.shape) == 5:
        return conv3d_into(b, x, w, bias, stride, padding, dilation, groups, out)
    return emit_conv(b, x, w, bias, stride, padding, dilation, groups, out)


def _transposed_weight(b, w, groups):
    """w [Cin, O/g, k...] -> [O, Cin/g, k...] flipped along every spatial dim."""
    nsp = len(w.shape) - 2
    for d in range(2, 2 + nsp):
        if w.shape[d] > 1:
            w = take_along(b, w, d, list(range(w.shape[d] - 1, -1, -1)))
    w = contiguous(b, w)
    cin, og = w.shape[0], w.shape[1]
    k = list(w.shape[2:])
    g5 = reshape(b, w, [groups, cin // groups, og] + k)
    perm = [0, 2, 1] + list(range(3, 3 + nsp))
    src = g5.permuted(perm)
    dst = b.alloc(src.shape, w.dtype, w.emu)
    dma_copy(b, src, dst)
    return reshape(b, dst, [groups * og, cin // groups] + k)


def convolution_general(b, node, x, w, bias, stride, padding, dilation, transposed, output_padding, groups):
    out = alloc_like_node(b, node)
    nsp = len(x.shape) - 2
    stride, padding, dilation, output_padding = (list(v) * nsp if len(v) == 1 else list(v)
                                                 for v in (stride, padding, dilation, output_padding or [0]))
    if not transposed:
        return conv_into(b, x, w, bias, list(stride), list(padding), list(dilation), groups, out)
    nsp = len(x.shape) - 2
    ks = list(w.shape[2:])
    lo = [dilation[i] * (ks[i] - 1) - padding[i] for i in range(nsp)]
    size = [out.shape[2 + i] + dilation[i] * (ks[i] - 1) for i in range(nsp)]  # input extent of the stride-1 conv
    z = b.alloc(list(x.shape[:2]) + size, x.dtype, x.emu)
    fill_into(b, z, 0.0)
    # x[i] lands at lo + i*stride; keep the i that land inside [0, size)
    src_shape, src_off, dst_strides, dst_off = list(x.shape), x.offset, list(z.strides), z.offset
    ok = True
    for i in range(nsp):
        d = 2 + i
        s = stride[i]
        i0 = max(0, -(lo[i] // s) if lo[i] < 0 else 0)
        while lo[i] + i0 * s < 0:
            i0 += 1
        i1 = min(x.shape[d] - 1, (size[i] - 1 - lo[i]) // s)
        n = i1 - i0 + 1
        if n <= 0:
            ok = False
            break
        src_shape[d] = n
        src_off += i0 * x.strides[d]
        dst_strides[d] = z.strides[d] * s
        dst_off += (lo[i] + i0 * s) * z.strides[d]
    if ok and x.numel:
        dma_copy(b, x.with_view(src_shape, x.strides, src_off), z.with_view(src_shape, dst_strides, dst_off))
    wt = _transposed_weight(b, w, groups)
    return conv_into(b, z, wt, bias, [1] * nsp, [0] * nsp, list(dilation), groups, out)


