"""Normalisation lowerings (VectorE): layer norm, group norm and inference batch norm."""
from __future__ import annotations

import torch

from neuron_emu.compiler.lowering import register
from neuron_emu.compiler.lowering.common import LoweringError, alloc_like_node, contiguous
from neuron_emu.isa import Instr, Op

aten = torch.ops.aten


@register(aten.native_layer_norm)
def _layer_norm(b, node, x, normalized_shape, weight, bias, eps):
    out = alloc_like_node(b, node, 0)
    x = contiguous(b, x)
    D = 1
    for s in normalized_shape:
        D *= s
    operands, reads = [x.buf], [x]
    f = dict(rows=x.numel // max(D, 1), D=D, has_weight=int(weight is not None), has_bias=int(bias is not None),
             in_dtype=x.emu, out_dtype=out.emu, eps=float(eps))
    for t in (weight, bias):
        if t is not None:
            t = contiguous(b, t)
            if t.offset:
                raise LoweringError("layer_norm weight/bias views at an offset are not supported")
            operands.append(t.buf)
            reads.append(t)
    operands.append(out.buf)
    b.emit(Instr(Op.LayerNorm, operands, f), reads, [out])
    from neuron_emu.compiler.lowering.norm_statistics import stats_outputs
    mean, rstd = stats_outputs(b, node, x, x.numel // max(D, 1), D, eps)
    return out, mean, rstd


def _batch_norm(b, node, x, weight, bias, mean, var, eps):
    if mean is None or var is None:
        raise LoweringError("batch_norm in training mode (no running statistics) is not supported for inference")
    out = alloc_like_node(b, node, 0)
    x = contiguous(b, x)
    N, C = x.shape[0], x.shape[1]
    HW = x.numel // max(N * C, 1)
    operands, reads = [x.buf], [x]
    for t in (mean, var, weight, bias):
        if t is not None:
            t = _own_buffer(b, contiguous(b, t))
            operands.append(t.buf)
            reads.append(t)
    operands.append(out.buf)
    f = dict(N=N, C=C, HW=HW, has_weight=int(weight is not None), has_bias=int(bias is not None), in_dtype=x.emu,
             out_dtype=out.emu, eps=float(eps))
    b.emit(Instr(Op.BatchNorm, operands, f), reads, [out])
    # eval mode saves no statistics: eager returns empty save_mean / save_invstd
    extra = tuple(alloc_like_node(b, node, k) if node.outputs[k].shape and not node.outputs[k].shape[0] else None
                  for k in range(1, len(node.outputs)))
    return (out,) + extra


def _own_buffer(b, t):
    if t.offset == 0:
        return t
    from neuron_emu.compiler.lowering.common import dma_copy
    o = b.alloc(t.shape, t.dtype, t.emu)
    dma_copy(b, t, o)
    return o


@register(aten._native_batch_norm_legit_no_training)
def _bn_no_training(b, node, x, weight, bias, running_mean, running_var, momentum, eps):
    return _batch_norm(b, node, x, weight, bias, running_mean, running_var, eps)


@register(aten.native_batch_norm, aten._native_batch_norm_legit)
def _native_bn(b, node, x, weight, bias, running_mean, running_var, training, momentum, eps):
    if training or running_mean is None:  # normalised with the batch's own statistics
        from neuron_emu.compiler.lowering.norm_statistics import batch_norm_train
        return batch_norm_train(b, node, x, weight, bias, running_mean, running_var, momentum, eps)[:3]
    return _batch_norm(b, node, x, weight, bias, running_mean, running_var, eps)


@register(aten.native_group_norm)
def _group_norm(b, node, x, weight, bias, N, C, HxW, group, eps):
    """Group norm: a LayerNorm without affine over each [C/G * HW] group, then the per-channel affine on VectorE."""
    from neuron_emu.compiler.lowering.elementwise import binary_into

    out = alloc_like_node(b, node, 0)
    x = contiguous(b, x)
    rows, D = N * group, (C // group) * HxW
    last = out if weight is None and bias is None else b.alloc(out.shape, out.dtype)
    f = dict(rows=rows, D=D, has_weight=0, has_bias=0, in_dtype=x.emu, out_dtype=last.emu, eps=float(eps))
    b.emit(Instr(Op.LayerNorm, [x.buf, last.buf], f), [x], [last])
    shape3 = [N, C, HxW]
    y = last.with_view(shape3, [C * HxW, HxW, 1])
    for op, t in (("mul", weight), ("add", bias)):
        if t is None:
            continue
        dst = out if op == "add" or bias is None else b.alloc(out.shape, out.dtype)
        dst3 = dst.with_view(shape3, [C * HxW, HxW, 1])
        binary_into(b, op, y, t.with_view([C, 1], [t.strides[0], 0]), dst3)
        y = dst3
    from neuron_emu.compiler.lowering.norm_statistics import stats_outputs
    mean, rstd = stats_outputs(b, node, x, rows, D, eps)
    return out, mean, rstd
