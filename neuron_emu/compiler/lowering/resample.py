"""Resampling along spatial dims: nearest upsampling (a GpSimd row gather per dim with a compile-time index),
linear/bilinear/trilinear/bicubic upsampling and adaptive average pooling of any sizes (separable: one TensorE
matmul per dim with a compile-time [in, out] weight matrix, weights computed in fp32 as eager computes them), and
reflection/replication padding (a DMA copy through a compile-time index gather per dim)."""
from __future__ import annotations

import torch

from neuron_emu.compiler.lowering import register
from neuron_emu.compiler.lowering.common import LoweringError, alloc_like_node, contiguous, dma_copy
from neuron_emu.compiler.lowering.shape import take_along
from neuron_emu.isa import DType

aten = torch.ops.aten
f32 = torch.float32


def apply_along(b, node, x, d, mat: torch.Tensor, out=None):
    """y = x contracted with mat [n_in, n_out] along dim d (TensorE): d moves last, [R, n_in] @ mat, and back."""
    from neuron_emu.compiler.lowering.matmul import emit_matmul
    nd = len(x.shape)
    perm = [i for i in range(nd) if i != d] + [d]
    xt = contiguous(b, x.permuted(perm))
    n_in, n_out = mat.shape
    R = xt.numel // max(n_in, 1)
    # Resampling is not a matmult op: auto-cast rounds only its result (the copy into `out`), so the weights, the
    # products and the pass-to-pass temporaries stay fp32 (neuron_emu/compiler/reference.py states the policy).
    y = b.alloc(list(xt.shape[:-1]) + [n_out], f32, DType.F32)
    emit_matmul(b, node, xt.with_view([R, n_in], [n_in, 1]), b.const(mat.to(f32).contiguous()),
                y.with_view([R, n_out], [n_out, 1]), in_dtype=DType.F32)
    inv = [perm.index(i) for i in range(nd)]
    back = y.permuted(inv)
    if out is None:
        return back
    dma_copy(b, back, out)
    return out


def _scale(n_in, n_out, align_corners, scale):
    """area_pixel_compute_scale in fp32."""
    if align_corners:
        return torch.tensor((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0, dtype=f32)
    if scale is not None and scale > 0:
        return torch.tensor(1.0 / scale, dtype=f32)
    return torch.tensor(n_in, dtype=f32) / torch.tensor(n_out, dtype=f32)


def linear_matrix(n_in, n_out, align_corners, scale):
    s = _scale(n_in, n_out, align_corners, scale)
    dst = torch.arange(n_out, dtype=f32)
    src = s * dst if align_corners else torch.clamp(s * (dst + 0.5) - 0.5, min=0.0)
    i0 = torch.floor(src).to(torch.int64).clamp(max=n_in - 1)
    i1 = torch.clamp(i0 + 1, max=n_in - 1)
    l1 = src - i0.to(f32)
    l0 = 1.0 - l1
    m = torch.zeros(n_in, n_out, dtype=f32)
    m.index_put_((i0, torch.arange(n_out)), l0, accumulate=True)
    m.index_put_((i1, torch.arange(n_out)), l1, accumulate=True)
    return m


def cubic_matrix(n_in, n_out, align_corners, scale, A=-0.75):
    s = _scale(n_in, n_out, align_corners, scale)
    dst = torch.arange(n_out, dtype=f32)
    src = s * dst if align_corners else s * (dst + 0.5) - 0.5  # bicubic does not clamp at 0
    i = torch.floor(src)
    t = src - i

    def c1(x):
        return ((A + 2) * x - (A + 3)) * x * x + 1

    def c2(x):
        return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A
    w = [c2(t + 1), c1(t), c1(1 - t), c2(2 - t)]
    m = torch.zeros(n_in, n_out, dtype=f32)
    for k in range(4):
        idx = (i.to(torch.int64) - 1 + k).clamp(0, n_in - 1)
        m.index_put_((idx, torch.arange(n_out)), w[k], accumulate=True)
    return m


def adaptive_avg_matrix(n_in, n_out):
    m = torch.zeros(n_in, n_out, dtype=f32)
    for i in range(n_out):
        s, e = (i * n_in) // n_out, -(-((i + 1) * n_in) // n_out)
        m[s:e, i] = 1.0 / (e - s)
    return m


def nearest_index(n_in, n_out, scale, exact):
    if n_out == n_in and not exact:
        return list(range(n_out))
    s = torch.tensor(1.0 / scale, dtype=f32) if scale is not None and scale > 0 else \
        torch.tensor(n_in, dtype=f32) / torch.tensor(n_out, dtype=f32)
    dst = torch.arange(n_out, dtype=f32)
    src = torch.floor((dst + 0.5) * s) if exact else torch.floor(dst * s)
    return src.to(torch.int64).clamp(max=n_in - 1).tolist()


def _upsample_args(node, nsp, rest):
    """(align_corners or None, per-dim scales) from the .vec or .default overload's arguments."""
    rest = list(rest)
    has_align = "align_corners" in [a.name for a in node.target._schema.arguments]
    align = None
    if node.target._overloadname == "vec":
        if has_align:
            align = rest[1] if len(rest) > 1 else False
        sf = rest[-1] if rest and (len(rest) > (2 if has_align else 1)) else None
        scales = list(sf) if sf is not None else [None] * nsp
    else:
        if has_align:
            align = rest[1] if len(rest) > 1 else False
            scales = rest[2:]
        else:
            scales = rest[1:]
        scales = list(scales) + [None] * (nsp - len(scales))
    return align, scales[:nsp]


def _nearest(exact):
    def lower(b, node, x, *rest, **kw):
        out = alloc_like_node(b, node)
        nsp = len(out.shape) - 2
        _, scales = _upsample_args(node, nsp, rest)
        y = x
        for k in range(nsp):
            d = 2 + k
            idx = nearest_index(x.shape[d], out.shape[d], scales[k], exact)
            y = take_along(b, y, d, idx, out if k == nsp - 1 else None)
        return out
    return lower


register(aten.upsample_nearest1d, aten.upsample_nearest2d, aten.upsample_nearest3d)(_nearest(False))
register(aten._upsample_nearest_exact1d, aten._upsample_nearest_exact2d, aten._upsample_nearest_exact3d)(_nearest(True))


def _interp(cubic):
    def lower(b, node, x, *rest, **kw):
        out = alloc_like_node(b, node)
        nsp = len(out.shape) - 2
        align, scales = _upsample_args(node, nsp, rest)
        align = bool(kw.get("align_corners", align))
        y = x
        for k in range(nsp):
            d = 2 + k
            n_in, n_out = x.shape[d], out.shape[d]
            mat = cubic_matrix(n_in, n_out, align, scales[k]) if cubic else linear_matrix(n_in, n_out, align, scales[k])
            y = apply_along(b, node, y, d, mat, out if k == nsp - 1 else None)
        return out
    return lower


register(aten.upsample_linear1d, aten.upsample_bilinear2d, aten.upsample_trilinear3d)(_interp(False))
register(aten.upsample_bicubic2d)(_interp(True))


def adaptive_avg_into(b, node, x, out):
    if len(x.shape) != len(out.shape):
        raise LoweringError("adaptive pooling output rank differs from the input's")
    spatial = [d for d in range(len(x.shape)) if d >= len(x.shape) - _nsp(node)]
    y = x
    for i, d in enumerate(spatial):
        y = apply_along(b, node, y, d, adaptive_avg_matrix(x.shape[d], out.shape[d]), out if i == len(spatial) - 1 else None)
    return out


def _nsp(node):
    name = node.name
    return 3 if "3d" in name else (2 if "2d" in name else 1)


@register(aten._adaptive_avg_pool3d, aten.adaptive_avg_pool3d)
def _adaptive_avg3d(b, node, x, output_size):
    return adaptive_avg_into(b, node, x, alloc_like_node(b, node))


def _pad_index(n, lo, hi, mode):
    idx = []
    for j in range(-lo, n + hi):
        if mode == "reflect":
            k = abs(j)
            k = 2 * (n - 1) - k if k > n - 1 else k
        elif mode == "replicate":
            k = min(max(j, 0), n - 1)
        else:  # circular
            k = j % n
        idx.append(k)
    return idx


def _pad(mode):
    def lower(b, node, x, padding):
        out = alloc_like_node(b, node)
        nd = len(x.shape)
        npairs = len(padding) // 2
        y = x
        for i in range(npairs):
            d = nd - 1 - i
            lo, hi = int(padding[2 * i]), int(padding[2 * i + 1])
            y = take_along(b, y, d, _pad_index(x.shape[d], lo, hi, mode), out if i == npairs - 1 else None)
        return out
    return lower


register(aten.reflection_pad1d, aten.reflection_pad2d, aten.reflection_pad3d)(_pad("reflect"))
register(aten.replication_pad1d, aten.replication_pad2d, aten.replication_pad3d)(_pad("replicate"))
register(aten._pad_circular)(_pad("circular"))
