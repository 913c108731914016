"""TensorE lowerings: mm/addmm/bmm/baddbmm and convolution. Auto-cast decides the input dtype;
constant operands (weights) are rounded once at compile time, as the compiler stores cast weights."""
from __future__ import annotations

import torch

from neuron_emu.compiler.builder import TV
from neuron_emu.compiler.lowering import register
from neuron_emu.compiler.lowering.common import LoweringError, alloc_like_node, contiguous, reshape
from neuron_emu.isa import DType, Instr, Op

aten = torch.ops.aten


def _operand(b, x: TV, rows: int, cols: int):
    """(tv, trans, ld, batch_stride) for a [batch?, rows, cols] operand, copying if BLAS can't read it."""
    rs, cs = x.strides[-2], x.strides[-1]
    if rows == 1:
        rs = max(cols, 1)
    if cols == 1:
        cs = 1 if rows > 1 and rs != 1 else cs
    if cs == 1 and rs >= max(cols, 1):
        return x, 0, rs
    if rs == 1 and cs >= max(rows, 1):
        return x, 1, cs
    x = contiguous(b, x)
    return x, 0, max(cols, 1)


def _needs_transpose(b, x: TV, k_contiguous: bool) -> int:
    """1 when TensorE must transpose this operand first: a row-wise op (softmax, layer norm; builder.free_axis_rows)
    left its innermost dim on the SBUF free axis and the matmul contracts over that dim, which TensorE needs on the
    partition axis (NKI-ISA nc_matmul). Charged once per buffer: later matmuls reuse the transposed copy."""
    if not k_contiguous or x.buf not in b.free_axis_rows or x.buf in b.pe_transposed:
        return 0
    b.pe_transposed.add(x.buf)
    return 1


def _prepare(b, x: TV, dtype: DType) -> TV:
    if b.is_const(x) and dtype != DType.F32:
        return b.rounded_const(x, dtype)
    return x


def emit_matmul(b, node, a: TV, w: TV, out: TV, bias: TV = None, alpha=1.0, beta=1.0, in_dtype=None):
    """out[batch, M, N] = alpha * a @ w (+ beta * bias[N]); a: [B?, M, K], w: [B?, K, N]. `in_dtype` overrides the
    auto-cast operand type for a lowering that uses TensorE for an op the policy computes in fp32 (resampling)."""
    dtype = b.options.matmul_dtype if in_dtype is None else in_dtype
    if not b.options_has_fp32_matmul and dtype == DType.F32:
        dtype = DType.BF16  # NeuronCore-v1 has no fp32 matmul: the compiler always casts
    if a.dtype in (torch.bfloat16, torch.float16) and dtype == DType.F32:
        dtype = a.emu
    batched = len(out.shape) == 3
    B = out.shape[0] if batched else 1
    M, N = out.shape[-2], out.shape[-1]
    K = a.shape[-1]
    a = _prepare(b, a, dtype)
    w = _prepare(b, w, dtype)
    a, ta, lda = _operand(b, a, M, K)
    w, tb, ldb = _operand(b, w, K, N)
    # K contiguous in A ([M, K], ta 0) or in B ([N, K], tb 1) of a row-wise op's output: K is on the free axis
    pe_transpose = _needs_transpose(b, a, ta == 0) | (_needs_transpose(b, w, tb == 1) << 1)
    f = dict(batch=B, M=M, K=K, N=N, a_off=a.offset, a_bstride=a.strides[0] if batched and a.shape[0] != 1 else 0,
             transA=ta, lda=lda, b_off=w.offset, b_bstride=w.strides[0] if batched and w.shape[0] != 1 else 0,
             transB=tb, ldb=ldb, out_off=out.offset, out_bstride=M * N if batched else 0, in_dtype=dtype,
             a_prerounded=int(a.emu == dtype), b_prerounded=int(w.emu == dtype), has_bias=0, bias_off=0,
             out_dtype=out.emu, accumulate=0, stationary_side=0 if M >= N else 1, pe_transpose=pe_transpose,
             alpha=alpha, beta=beta)
    operands, reads = [a.buf, w.buf], [a, w]
    if bias is not None:
        f.update(has_bias=1, bias_off=bias.offset)
        operands.append(bias.buf)
        reads.append(bias)
    operands.append(out.buf)
    b.emit(Instr(Op.MatMul, operands, f), reads, [out])
    return out


def _bias_vector(b, bias: TV, N: int):
    """A bias usable by MatMul (one value per output column), or None."""
    if bias is None:
        return None
    if bias.numel == N and (len(bias.shape) == 1 or all(s == 1 for s in bias.shape[:-1])):
        if bias.strides[-1] == 1 or N == 1:
            return bias.with_view([N], [1])
    return None


@register(aten.mm, aten.bmm)
def _mm(b, node, a, w):
    return emit_matmul(b, node, a, w, alloc_like_node(b, node))


@register(aten.addmm, aten.baddbmm)
def _addmm(b, node, bias, a, w, beta=1, alpha=1):
    """A per-column bias rides on the MatMul; any other bias is a VectorE add after it."""
    out = alloc_like_node(b, node)
    bv = _bias_vector(b, bias, out.shape[-1])
    if bv is not None:
        return emit_matmul(b, node, a, w, out, bv, alpha, beta)
    from neuron_emu.compiler.lowering.elementwise import binary_into
    tmp = b.alloc(out.shape, out.dtype, DType.F32)
    emit_matmul(b, node, a, w, tmp, None, alpha)
    return binary_into(b, "add", tmp, bias, out, beta_b=beta)


@register(aten.convolution, aten._convolution)
def _convolution(b, node, x, w, bias, stride, padding, dilation, transposed, output_padding, groups, *_):
    nsp = len(x.shape) - 2
    if transposed or nsp == 3:
        from neuron_emu.compiler.lowering.conv import convolution_general
        return convolution_general(b, node, x, w, bias, stride, padding, dilation, transposed, output_padding, groups)
    if nsp not in (1, 2):
        raise LoweringError(f"{nsp}-D convolution is not supported (1-D, 2-D and 3-D are)")
    return emit_conv(b, x, w, bias, stride, padding, dilation, groups, alloc_like_node(b, node))


def emit_conv(b, x, w, bias, stride, padding, dilation, groups, out):
    """A 1-D or 2-D convolution on TensorE into out."""
    nsp = len(x.shape) - 2
    if nsp == 1:  # a 1-D convolution is a 2-D one with H = 1
        x = reshape(b, x, [x.shape[0], x.shape[1], 1, x.shape[2]])
        w = reshape(b, w, [w.shape[0], w.shape[1], 1, w.shape[2]])
        stride, padding, dilation = [1] + list(stride), [0] + list(padding), [1] + list(dilation)
        out4 = out.with_view([out.shape[0], out.shape[1], 1, out.shape[2]], [out.shape[1] * out.shape[2], out.shape[2], out.shape[2], 1])
    else:
        out4 = out
    dtype = b.options.matmul_dtype
    if not b.options_has_fp32_matmul and dtype == DType.F32:
        dtype = DType.BF16
    x = contiguous(b, x)
    w = contiguous(b, _prepare(b, w, dtype))
    N, C, H, W_ = x.shape
    O, _, kh, kw = w.shape
    f = dict(N=N, C=C, H=H, W=W_, O=O, kh=kh, kw=kw, sh=stride[0], sw=stride[1], ph=padding[0], pw=padding[1],
             dh=dilation[0], dw=dilation[1], groups=groups, in_dtype=dtype, w_prerounded=int(w.emu == dtype),
             has_bias=0, out_dtype=out.emu, OH=out4.shape[2], OW=out4.shape[3])
    if x.offset or w.offset or out4.offset:
        x, w = _zero_offset(b, x), _zero_offset(b, w)
    operands, reads = [x.buf, w.buf], [x, w]
    if bias is not None:
        bias = _zero_offset(b, contiguous(b, bias))
        f["has_bias"] = 1
        operands.append(bias.buf)
        reads.append(bias)
    operands.append(out4.buf)
    b.emit(Instr(Op.Conv2d, operands, f), reads, [out4])
    return out


def _zero_offset(b, x: TV) -> TV:
    """Conv2d reads whole buffers: move a view at an offset into its own buffer."""
    if x.offset == 0 and b.buf_numel[x.buf] == x.numel:
        return x
    from neuron_emu.compiler.lowering.common import dma_copy
    out = b.alloc(x.shape, x.dtype, x.emu)
    dma_copy(b, x, out)
    return out
