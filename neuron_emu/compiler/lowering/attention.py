"""Scaled dot-product attention, composed of the other families' lowerings: scores = Q @ K^T * scale on TensorE
(the scale rides on the MatMul's alpha), the mask on VectorE (additive) or GpSimdE (boolean, a Select with -inf),
softmax on VectorE, probabilities @ V on TensorE.

Which ATen form reaches capture (torch 2.13, CPU): `F.scaled_dot_product_attention` is CompositeImplicit and
dispatches to `_scaled_dot_product_flash_attention_for_cpu` (a boolean mask is turned into an additive float mask
by a `where` before it; grouped-query K/V keep their fewer heads) when that kernel accepts the inputs, else to the
math path, which decomposes into bmm / mul / add / `_safe_softmax` (lowered here too). The other forms are registered for front ends
that hand them over undecomposed: `scaled_dot_product_attention` and `_scaled_dot_product_attention_math`
(CompositeImplicit, so the tracer never sees them) and `_scaled_dot_product_efficient_attention` (CUDA-only).

Semantics follow eager's fused kernels: a query row whose keys are all masked out (every score -inf) gives a zero
output row and a logsumexp of 0 (the math path's NaN-free `_safe_softmax` gives the same zeros). The logsumexp
output is computed only when a consumer reads it. Dropout is inference-only: p must be 0.
"""
from __future__ import annotations

import math

import torch

from neuron_emu.compiler.lowering import register
from neuron_emu.compiler.lowering.common import LoweringError, alloc_like_node, dma_copy, reshape
from neuron_emu.compiler.lowering.elementwise import activation_into, binary_into, select_into, tensor_scalar_into
from neuron_emu.compiler.lowering.matmul import emit_matmul
from neuron_emu.compiler.lowering.reduce import reduce_into, softmax_into
from neuron_emu.isa import ActFunc, ReduceOp, contiguous_strides

aten = torch.ops.aten
NEG_INF = float("-inf")


def _prod(xs) -> int:
    n = 1
    for x in xs:
        n *= int(x)
    return n


def _expand_kv(b, t, batch):
    """K or V [*kb, S, D] materialised to the query's batch dims: size-1 dims broadcast, and fewer heads (dim -3)
    repeated for grouped-query attention (query head h reads kv head h // (Hq / Hkv), as repeat_interleave)."""
    kb = tuple(t.shape[:-2])
    if kb == tuple(batch):
        return t
    nd = len(batch)
    if len(kb) > nd:
        raise LoweringError(f"attention: key/value batch dims {list(kb)} do not broadcast to the query's {list(batch)}")
    shape = (1,) * (nd - len(kb)) + kb
    strides = (0,) * (nd - len(kb)) + tuple(t.strides[:-2])
    ex_shape, ex_strides = [], []
    for i, (s, st, want) in enumerate(zip(shape, strides, batch)):
        if s == want:
            ex_shape.append(s)
            ex_strides.append(st)
        elif s == 1:
            ex_shape.append(want)
            ex_strides.append(0)
        elif i == nd - 1 and want % s == 0:  # grouped-query heads
            ex_shape += [s, want // s]
            ex_strides += [st, 0]
        else:
            raise LoweringError(f"attention: key/value batch dims {list(kb)} do not broadcast to the query's "
                                f"{list(batch)} (grouped-query heads must divide the query heads)")
    ex_shape += list(t.shape[-2:])
    ex_strides += list(t.strides[-2:])
    out = b.alloc(ex_shape, t.dtype, t.emu)
    dma_copy(b, t.with_view(ex_shape, ex_strides), out)
    full = list(batch) + list(t.shape[-2:])
    return out.with_view(full, contiguous_strides(full))


def safe_softmax_into(b, x, out):
    """Softmax over the last dim with rows that are all -inf giving zeros (eager's `_safe_softmax` and fused
    attention kernels; a plain softmax gives NaN there). Returns (out, row max [..., 1], row-valid flag [..., 1])."""
    nd = len(x.shape)
    probs = softmax_into(b, x, -1, b.alloc(x.shape, torch.float32))
    rowmax = reduce_into(b, x, [nd - 1], ReduceOp.Max, b.alloc(list(x.shape[:-1]) + [1], torch.float32))
    valid = tensor_scalar_into(b, rowmax, b.alloc(list(x.shape[:-1]) + [1], torch.float32), "gt", NEG_INF)
    return select_into(b, valid, probs, 0.0, out), rowmax, valid


@register(aten._safe_softmax)
def _safe_softmax(b, node, x, dim, dtype=None):
    """What the math attention path (`F.scaled_dot_product_attention` when the fused CPU kernel declines) uses."""
    nd = len(x.shape)
    d = dim + nd if dim < 0 else dim
    if d == nd - 1:
        return safe_softmax_into(b, x, alloc_like_node(b, node))[0]
    perm = [i for i in range(nd) if i != d] + [d]
    xt = x.permuted(perm)
    tmp = safe_softmax_into(b, xt, b.alloc(xt.shape, torch.float32))[0]
    inv = [perm.index(i) for i in range(nd)]
    out = alloc_like_node(b, node)
    dma_copy(b, tmp.permuted(inv), out)
    return out


def _used(b, node, i: int) -> bool:
    used = getattr(b, "used_values", None)
    return used is None or node.outputs[i].id in used


def attention(b, node, q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
              out=None, want_lse=False, want_probs=False):
    """Returns (out, logsumexp or None, probabilities or None); shapes [*batch, L, Ev], [*batch, L], [*batch, L, S]."""
    if dropout_p:
        raise LoweringError(f"attention with dropout_p={dropout_p}: Neuron traces are for inference (dropout_p must be 0)")
    if len(q.shape) < 2 or len(k.shape) < 2 or len(v.shape) < 2:
        raise LoweringError("attention: query, key and value need at least 2 dims")
    batch = list(q.shape[:-2])
    L, E = q.shape[-2:]
    S, Ev = k.shape[-2], v.shape[-1]
    N = _prod(batch)
    scale = 1.0 / math.sqrt(E) if scale is None else float(scale)
    k = _expand_kv(b, k, batch)
    v = _expand_kv(b, v, batch)
    q3, k3, v3 = reshape(b, q, [N, L, E]), reshape(b, k, [N, S, E]), reshape(b, v, [N, S, Ev])
    kT = k3.with_view([N, E, S], [k3.strides[0], k3.strides[2], k3.strides[1]])
    full = batch + [L, S]
    scores = b.alloc(full, torch.float32)
    emit_matmul(b, node, q3, kT, scores.with_view([N, L, S], contiguous_strides([N, L, S])), alpha=scale)

    masked = False
    if is_causal:  # top-left aligned, as torch: query i sees keys j <= i
        keep = b.const(torch.ones(L, S, dtype=torch.bool).tril())
        scores = select_into(b, keep, scores, NEG_INF, b.alloc(full, torch.float32))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = select_into(b, attn_mask, scores, NEG_INF, b.alloc(full, torch.float32))
        else:
            scores = binary_into(b, "add", scores, attn_mask, b.alloc(full, torch.float32))
        masked = True

    rowmax = valid = None
    if masked or want_lse:
        probs, rowmax, valid = safe_softmax_into(b, scores, b.alloc(full, torch.float32))
    else:
        probs = softmax_into(b, scores, -1, b.alloc(full, torch.float32))

    if out is None:
        out = b.alloc(batch + [L, Ev], torch.float32)
    emit_matmul(b, node, probs.with_view([N, L, S], contiguous_strides([N, L, S])), v3,
                out.with_view([N, L, Ev], contiguous_strides([N, L, Ev])))

    lse = None
    if want_lse:  # rowmax + log(sum(exp(scores - rowmax))); 0 on fully masked rows
        safe_max = select_into(b, valid, rowmax, 0.0, b.alloc(batch + [L, 1], torch.float32))
        shifted = binary_into(b, "sub", scores, safe_max, b.alloc(full, torch.float32))
        ex = activation_into(b, shifted, b.alloc(full, torch.float32), ActFunc.Exp)
        tot = reduce_into(b, ex, [len(full) - 1], ReduceOp.Sum, b.alloc(batch + [L], torch.float32))
        logt = activation_into(b, tot, b.alloc(batch + [L], torch.float32), ActFunc.Log)
        lse_raw = binary_into(b, "add", logt, safe_max.with_view(batch + [L], contiguous_strides(batch + [L])),
                              b.alloc(batch + [L], torch.float32))
        lse = select_into(b, valid.with_view(batch + [L], contiguous_strides(batch + [L])), lse_raw, 0.0,
                          alloc_like_node(b, node, 1))
    return out, lse, (probs if want_probs else None)


@register(aten._scaled_dot_product_flash_attention_for_cpu)
def _flash_cpu(b, node, q, k, v, dropout_p=0.0, is_causal=False, *, attn_mask=None, scale=None):
    out, lse, _ = attention(b, node, q, k, v, attn_mask, dropout_p, is_causal, scale,
                            out=alloc_like_node(b, node, 0), want_lse=_used(b, node, 1))
    return out, lse


@register(aten.scaled_dot_product_attention)
def _sdpa(b, node, q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, *, scale=None, enable_gqa=False):
    if not enable_gqa and len(q.shape) >= 3 and len(k.shape) >= 3 and k.shape[-3] not in (1, q.shape[-3]):
        raise LoweringError("scaled_dot_product_attention: key/value have fewer heads than the query; pass enable_gqa=True")
    return attention(b, node, q, k, v, attn_mask, dropout_p, is_causal, scale, out=alloc_like_node(b, node))[0]


@register(aten._scaled_dot_product_attention_math)
def _sdpa_math(b, node, q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, dropout_mask=None, *,
               scale=None, enable_gqa=False):
    if dropout_mask is not None:
        raise LoweringError("_scaled_dot_product_attention_math with a dropout_mask is not supported (inference only)")
    out, _, probs = attention(b, node, q, k, v, attn_mask, dropout_p, is_causal, scale,
                              out=alloc_like_node(b, node, 0), want_probs=True)
    return out, probs


@register(aten._scaled_dot_product_efficient_attention)
def _efficient(b, node, q, k, v, attn_bias, compute_log_sumexp, dropout_p=0.0, is_causal=False, *, scale=None):
    if any(_used(b, node, i) for i in (1, 2, 3)):
        raise LoweringError("_scaled_dot_product_efficient_attention: its log_sumexp (padded to 32 rows) and philox "
                            "outputs are not computed by the emulated compiler; only the attention output can be used")
    out, _, _ = attention(b, node, q, k, v, attn_bias, dropout_p, is_causal, scale, out=alloc_like_node(b, node, 0))
    return out, None, None, None
