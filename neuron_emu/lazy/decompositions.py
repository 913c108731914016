"""Decompositions the lazy device prefers to PyTorch's: each is written with ops the compiler lowers, so a training
step stays one graph instead of being cut by a CPU fallback (torch's versions use prims.var, scatter, index_put).
Each returns NotImplemented to defer to PyTorch's decomposition for a case it does not cover.

`VALUE_TABLE` holds the hot ones (an optimizer's per-parameter update) once more at the value level: they chain
`rec(op, args)` (tensor._fast_record: no tensor wrappers, no dispatcher round trip per op) and return the Ref, or
None when an argument needs the general path (then the torch-level version runs)."""
from __future__ import annotations

from typing import Callable, Dict

import torch

aten = torch.ops.aten
TABLE: Dict[object, Callable] = {}
VALUE_TABLE: Dict[object, Callable] = {}


def _register(op):
    def deco(fn):
        TABLE[op] = fn
        return fn
    return deco


@_register(aten.native_layer_norm.default)
def native_layer_norm(x, normalized_shape, weight, bias, eps):
    dims = list(range(x.dim() - len(normalized_shape), x.dim()))
    mean = x.mean(dims, keepdim=True)
    centered = x - mean
    var = (centered * centered).mean(dims, keepdim=True)   # biased variance, as layer norm uses
    rstd = torch.rsqrt(var + eps)
    out = centered * rstd
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out, mean, rstd


@_register(aten.addcdiv.default)
def addcdiv(self, tensor1, tensor2, *, value=1):
    return self + torch.mul(tensor1, value) / tensor2   # eager's order: self + (value * t1) / t2


@_register(aten.addcmul.default)
def addcmul(self, tensor1, tensor2, *, value=1):
    return self + torch.mul(tensor1, value) * tensor2


def _addc_values(op):
    def decomp(rec, self, tensor1, tensor2, *, value=1):   # as addcdiv/addcmul above, op for op
        scaled = rec(aten.mul.Tensor, (tensor1, value))
        q = rec(op, (scaled, tensor2)) if scaled is not None else None
        return rec(aten.add.Tensor, (self, q)) if q is not None else None
    return decomp


VALUE_TABLE[aten.addcdiv.default] = _addc_values(aten.div.Tensor)
VALUE_TABLE[aten.addcmul.default] = _addc_values(aten.mul.Tensor)


def _alpha_values(op):
    """`add(self, other, alpha=lr)` as `self + other * alpha` with alpha in mul's Tensor slot: device data, as
    torch_xla makes non-special scalars. SGD's `p.add_(grad, alpha=-lr)` then keeps one graph while a scheduler
    changes lr every step (alpha as a graph constant recompiled each step). In bf16/fp16 the product is rounded
    before the sum, as torch_xla computes it (eager CPU rounds once)."""
    def decomp(rec, self, other, *, alpha=1):
        if type(alpha) is not float or alpha in (0.0, 1.0, -1.0) or not _floating(self) or not _floating(other) \
                or self.dtype != other.dtype:   # (fp32 + bf16 * alpha: the product in bf16 would lose digits)
            return None
        scaled = rec(aten.mul.Tensor, (other, alpha))
        return rec(op, (self, scaled)) if scaled is not None else None
    return decomp


def _floating(x) -> bool:
    dtype = getattr(x, "dtype", None)
    return dtype is not None and dtype.is_floating_point


VALUE_TABLE[aten.add.Tensor] = _alpha_values(aten.add.Tensor)
VALUE_TABLE[aten.sub.Tensor] = _alpha_values(aten.sub.Tensor)


@_register(aten.nll_loss_backward.default)
def nll_loss_backward(grad_output, self, target, weight, reduction, ignore_index, total_weight):
    if self.dim() > 2:
        return NotImplemented
    classes = torch.arange(self.shape[-1])          # CPU: becomes device data, no fallback
    coef = (target.unsqueeze(-1) == classes) & (target != ignore_index).unsqueeze(-1)
    coef = coef.to(self.dtype)
    if weight is not None:
        coef = coef * weight
    g = grad_output.unsqueeze(-1) if reduction == 0 and self.dim() == 2 else grad_output
    out = -(coef * g)
    if reduction == 1:
        out = out / total_weight
    return out


@_register(aten.embedding_dense_backward.default)
def embedding_dense_backward(grad_output, indices, num_weights, padding_idx, scale_grad_by_freq):
    if scale_grad_by_freq:
        return NotImplemented
    idx = indices.reshape(-1)
    g = grad_output.reshape(idx.shape[0], grad_output.shape[-1])
    onehot = (idx.unsqueeze(-1) == torch.arange(num_weights)).to(g.dtype)   # [tokens, vocabulary]
    if padding_idx >= 0:
        onehot = onehot * (idx != padding_idx).unsqueeze(-1).to(g.dtype)
    return torch.mm(onehot.t(), g)   # (inside dispatch, `@` would arrive as aten::matmul, which has no lowering)


@_register(aten.__and__.Tensor)
def _and(a, b):
    return torch.bitwise_and(a, b)


@_register(aten.__or__.Tensor)
def _or(a, b):
    return torch.bitwise_or(a, b)


@_register(aten.convolution_backward.default)
def convolution_backward(grad_output, input, weight, bias_sizes, stride, padding, dilation, transposed,
                         output_padding, groups, output_mask):
    """A convolution's gradients as convolutions the compiler lowers: the input's is the transposed convolution of
    the output gradient, the weight's a convolution of the input by the output gradient with batch and channels
    swapped (stride and dilation trade places), cut to the kernel size. A transposed convolution is the adjoint:
    its input's gradient is the plain convolution of the output gradient, its weight's that of a plain convolution
    from the output gradient to the input."""
    nsp = input.dim() - 2
    if transposed:
        grad_input = grad_weight = None
        if output_mask[0]:
            grad_input = aten.convolution.default(grad_output, weight, None, stride, padding, dilation, False,
                                                  [0] * nsp, groups)
            for i in range(nsp):   # (an output padding >= stride adds rows the plain convolution reads past)
                grad_input = grad_input.narrow(2 + i, 0, input.shape[2 + i])
        if output_mask[1]:
            grad_weight = convolution_backward(input, grad_output, weight, None, stride, padding, dilation, False,
                                               [0] * nsp, groups, [False, True, False])[1]
        grad_bias = grad_output.sum([0] + list(range(2, 2 + nsp))) if output_mask[2] else None
        return grad_input, grad_weight, grad_bias
    stride, padding, dilation = (list(v) * (nsp // len(v)) for v in (stride, padding, dilation))
    ksize, osize = list(weight.shape[2:]), list(grad_output.shape[2:])
    grad_input = grad_weight = grad_bias = None
    if output_mask[0]:
        # the transposed convolution's output size falls short of the input's by rows the forward never read
        extra = [input.shape[2 + i] - ((osize[i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (ksize[i] - 1) + 1)
                 for i in range(nsp)]
        grad_input = aten.convolution.default(grad_output, weight, None, stride, padding, dilation, True, extra,
                                              groups)
    if output_mask[1] and input.shape[0] == 0:   # (an empty batch: the batch-as-channels convolution has none)
        grad_weight = weight.new_zeros(weight.shape)
    elif output_mask[1]:
        n, cin, cout = input.shape[0], input.shape[1], grad_output.shape[1]
        # x [N, g*ci, ...] -> [ci, g*N, ...]: the input's channels of a group are the batch, its samples the channels
        x = input.reshape([n, groups, cin // groups] + list(input.shape[2:])).permute(
            [2, 1, 0] + list(range(3, 3 + nsp))).reshape([cin // groups, groups * n] + list(input.shape[2:]))
        # dy [N, g*co, ...] -> [g*co, N, ...]: one kernel per output channel, over the samples
        g = grad_output.transpose(0, 1)
        gw = aten.convolution.default(x, g, None, dilation, padding, stride, False, [0] * nsp, groups)
        for i in range(nsp):
            gw = gw.narrow(2 + i, 0, ksize[i])
        grad_weight = gw.transpose(0, 1).contiguous()
    if output_mask[2]:
        grad_bias = grad_output.sum([0] + list(range(2, 2 + nsp)))
    return grad_input, grad_weight, grad_bias



@_register(aten._weight_norm_interface_backward.default)
def weight_norm_interface_backward(grad_w, saved_v, saved_g, saved_norms, dim):
    """w = v * g / |v| (norms over every dim but `dim`): eager's CPU kernel's formula with lowered ops."""
    dims = [d for d in range(saved_v.dim()) if d != dim % saved_v.dim()]
    dot = (grad_w * saved_v).sum(dims, keepdim=True)
    grad_g = (dot / saved_norms).to(saved_g.dtype)
    grad_v = (saved_g / saved_norms) * (grad_w - saved_v * (dot / (saved_norms * saved_norms)))
    return grad_v.to(saved_v.dtype), grad_g


def _index_put_values(rec, self, indices, values, accumulate=False):
    """`x[:, idx] = v`: index tensors after leading full dims, which the lowering does not take (it wants them on
    the leading dims: the whole graph would fail to compile and run op by op on CPU). The indexed dims are moved to
    the front, put there, and moved back. None when the pattern does not apply (the general path takes it)."""
    indices = list(indices)
    k = 0
    while k < len(indices) and indices[k] is None:
        k += 1
    idx = indices[k:]
    if k == 0 or not idx or any(i is None or i.dtype == torch.bool for i in idx) or \
            type(self).__name__ != "LazyTensor":
        return None
    m = len(idx)
    order = list(range(k, k + m)) + list(range(k)) + list(range(k + m, self.dim()))
    bshape = list(torch.broadcast_shapes(*[tuple(i.shape) for i in idx]))
    nb = len(bshape)
    full = list(self.shape[:k]) + bshape + list(self.shape[k + m:])   # what x[:, idx] reads
    v = values.expand(full).permute(list(range(k, k + nb)) + list(range(k)) + list(range(k + nb, len(full))))
    out = aten.index_put.default(self.permute(order), idx, v, accumulate)
    from neuron_emu.lazy.tensor import value_of
    return value_of(out.permute([order.index(d) for d in range(self.dim())]))


VALUE_TABLE[aten.index_put.default] = _index_put_values
