"""Upsampling backwards (nearest, linear, bilinear, bicubic) written with lowered ops (registered in
decompositions.TABLE): none has a lowering or a torch decomposition, so each was a CPU fallback, a graph cut every
training step. These interpolations are separable: the output is A_h @ x @ A_w^T with per-dimension weight
matrices fixed by the sizes, scales and align_corners, so the gradient is A_h^T @ g @ A_w. The matrices are read
off eager's own forward op applied on CPU to an identity basis (its exact index and weight rules), and become
graph constants."""
from __future__ import annotations

import torch

from neuron_emu.lazy.decompositions import _register

aten = torch.ops.aten


def _weights(forward, size_in: int, size_out: int, dim: int, nsp: int, extra):
    """[size_in, size_out]: where each input element goes (the transposed weight matrix) along spatial `dim` of
    an `nsp`-dimensional interpolation; the other spatial sizes are 1 (an identity)."""
    shape, out = [size_in, 1] + [1] * nsp, [1] * nsp
    shape[2 + dim], out[dim] = size_in, size_out
    basis = torch.eye(size_in).reshape(shape)
    r = forward(basis, out, *extra(dim))
    return r.reshape(size_in, size_out)


def separable_grad(grad_output, mats):
    """g contracted with each [in, out] matrix along its spatial dim (last dims first): the input's gradient."""
    g = grad_output
    for dim in reversed(range(len(mats))):
        m = mats[dim].to(g.dtype)
        axis = g.dim() - len(mats) + dim
        moved = g.movedim(axis, -1)
        lead = list(moved.shape[:-1])
        g = torch.mm(moved.reshape(-1, moved.shape[-1]), m.t()).reshape(lead + [m.shape[0]]).movedim(-1, axis)
    return g.contiguous()


def _separable(forward, scales_of):
    def backward(grad_output, output_size, input_size, *args):
        nsp = len(output_size)
        mats = [_weights(forward, input_size[2 + d], output_size[d], d, nsp, lambda dim: scales_of(args, dim, nsp))
                for d in range(nsp)]
        return separable_grad(grad_output, mats)
    return backward


def _only(scales, dim, nsp):   # the scale along `dim` (the others have size 1)
    return [scales[d] if d == dim else None for d in range(nsp)]


_register(aten.upsample_nearest1d_backward.default)(_separable(
    aten.upsample_nearest1d.default, lambda a, dim, nsp: [a[0] if a else None]))
_register(aten.upsample_nearest2d_backward.default)(_separable(
    aten.upsample_nearest2d.default, lambda a, dim, nsp: _only((list(a) + [None, None])[:2], dim, nsp)))
_register(aten.upsample_linear1d_backward.default)(_separable(
    aten.upsample_linear1d.default, lambda a, dim, nsp: [a[0], a[1] if len(a) > 1 else None]))
_register(aten.upsample_bilinear2d_backward.default)(_separable(
    aten.upsample_bilinear2d.default, lambda a, dim, nsp: [a[0]] + _only((list(a[1:]) + [None, None])[:2], dim, nsp)))
_register(aten.upsample_bicubic2d_backward.default)(_separable(
    aten.upsample_bicubic2d.default, lambda a, dim, nsp: [a[0]] + _only((list(a[1:]) + [None, None])[:2], dim, nsp)))
