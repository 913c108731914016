"""2-D pooling backwards written with lowered ops (registered in decompositions.TABLE). torch's max-pool backward
uses scatter_add, whose lowering needs a one-hot matrix of outputs x inputs (too large to compile for a CNN), and
avg-pool's has neither a lowering nor a torch decomposition (a CPU fallback: a graph cut every step). Both are
sums over kernel offsets: the outputs' gradients that reach the input element at offset (i, j) of their window,
placed on the input grid with two strided slice_scatters into a zero grid that includes the padding. Adaptive
average pooling's (no lowering either) is separable, one averaging matrix per dim, as upsampling is."""
from __future__ import annotations

import torch

from neuron_emu.lazy.decompositions import _register

aten = torch.ops.aten


def _pair(v, default=None):
    v = list(v) if v else list(default)
    return (v * 2)[:2]


def _grid(grad_output, H, W, kernel, stride, padding, dilation):
    """The padded input grid's size (ceil mode's last windows may reach past the padding)."""
    OH, OW = grad_output.shape[-2:]
    return (max(H + 2 * padding[0], (kernel[0] - 1) * dilation[0] + (OH - 1) * stride[0] + 1),
            max(W + 2 * padding[1], (kernel[1] - 1) * dilation[1] + (OW - 1) * stride[1] + 1))


def _place(part, grid, i, j, stride, dilation):
    """`part` [.., OH, OW] on the padded grid at the positions of kernel offset (i, j) of each window."""
    OH, OW = part.shape[-2:]
    lead = list(part.shape[:-2])
    rows = aten.slice_scatter.default(part.new_zeros(lead + [grid[0], OW]), part, -2, i * dilation[0],
                                      i * dilation[0] + (OH - 1) * stride[0] + 1, stride[0])
    return aten.slice_scatter.default(part.new_zeros(lead + [grid[0], grid[1]]), rows, -1, j * dilation[1],
                                      j * dilation[1] + (OW - 1) * stride[1] + 1, stride[1])


def _crop(grad, H, W, padding):
    return grad[..., padding[0]:padding[0] + H, padding[1]:padding[1] + W].contiguous()


@_register(aten.max_pool2d_with_indices_backward.default)
def max_pool2d_with_indices_backward(grad_output, self, kernel_size, stride, padding, dilation, ceil_mode, indices):
    kernel = _pair(kernel_size)
    stride, padding, dilation = _pair(stride, kernel), _pair(padding), _pair(dilation)
    H, W = self.shape[-2:]
    OH, OW = grad_output.shape[-2:]
    grid = _grid(grad_output, H, W, kernel, stride, padding, dilation)
    oh, ow = torch.arange(OH).unsqueeze(1), torch.arange(OW).unsqueeze(0)
    grad = None
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            row, col = oh * stride[0] - padding[0] + i * dilation[0], ow * stride[1] - padding[1] + j * dilation[1]
            # the flat index of the input element at this offset (a CPU constant); -1 in the padding
            at = torch.where((row >= 0) & (row < H) & (col >= 0) & (col < W), row * W + col, -1)
            placed = _place(torch.where(indices == at, grad_output, 0.0), grid, i, j, stride, dilation)
            grad = placed if grad is None else grad + placed
    return _crop(grad, H, W, padding)


@_register(aten.avg_pool2d_backward.default)
def avg_pool2d_backward(grad_output, self, kernel_size, stride, padding, ceil_mode, count_include_pad,
                        divisor_override):
    kernel = _pair(kernel_size)
    stride, padding = _pair(stride, kernel), _pair(padding)
    H, W = self.shape[-2:]
    OH, OW = grad_output.shape[-2:]
    # each window's divisor, as eager's kernel computes it (a CPU constant)
    h0, w0 = torch.arange(OH) * stride[0] - padding[0], torch.arange(OW) * stride[1] - padding[1]
    h1, w1 = torch.clamp(h0 + kernel[0], max=H + padding[0]), torch.clamp(w0 + kernel[1], max=W + padding[1])
    if divisor_override:
        div = torch.full((OH, OW), float(divisor_override))
    elif count_include_pad:
        div = ((h1 - h0).unsqueeze(1) * (w1 - w0).unsqueeze(0)).float()
    else:
        hs, ws = h1.clamp(max=H) - h0.clamp(min=0), w1.clamp(max=W) - w0.clamp(min=0)
        div = (hs.unsqueeze(1) * ws.unsqueeze(0)).float()
    g = grad_output / div.to(grad_output.dtype)
    grid = _grid(grad_output, H, W, kernel, stride, padding, [1, 1])
    grad = None
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            placed = _place(g, grid, i, j, stride, [1, 1])
            grad = placed if grad is None else grad + placed
    return _crop(grad, H, W, padding)


@_register(aten.adaptive_max_pool2d_backward.default)
def adaptive_max_pool2d_backward(grad_output, self, indices):
    """Windows of varying size: each output's gradient to the element its index names, through a one-hot
    comparison with every input position (outputs x inputs per channel: kept small, else the CPU fallback)."""
    H, W = self.shape[-2:]
    outputs = grad_output.shape[-1] * grad_output.shape[-2]
    if outputs * H * W > 1 << 16:
        return NotImplemented
    lead = list(grad_output.shape[:-2])
    hit = indices.reshape(lead + [outputs, 1]) == torch.arange(H * W)
    grad = torch.where(hit, grad_output.reshape(lead + [outputs, 1]), 0.0).sum(-2)
    return grad.reshape(lead + [H, W])


@_register(aten._adaptive_avg_pool2d_backward.default)
def adaptive_avg_pool2d_backward(grad_output, self):
    """Separable: output = A_h @ x @ A_w^T, each row of A averaging the window [floor(i*n/m), ceil((i+1)*n/m)) as
    eager's kernel bounds it; the gradient is A_h^T @ g @ A_w (upsample_backward.separable_grad)."""
    from neuron_emu.lazy.upsample_backward import separable_grad
    mats = []
    for n, m in zip(self.shape[-2:], grad_output.shape[-2:]):
        a = torch.zeros(n, m)   # [input, output]: where each input element's share goes
        for i in range(m):
            start, end = (i * n) // m, -((-(i + 1) * n) // m)
            a[start:end, i] = 1.0 / (end - start)
        mats.append(a)
    return separable_grad(grad_output, mats)
