"""The fused LSTM/GRU cells PyTorch's RNN layers call on a PrivateUse1 device (`_thnn_fused_*`: CUDA-only kernels,
so a CPU fallback cannot run them), written with lowered ops. The workspaces hold what CUDA's kernels store, in
the same layout, because autograd passes them from the forward to the backward op: LSTM [i, f, g, o] after their
activations; GRU [r, z, n, hx, the hidden new-gate part]."""
from __future__ import annotations

import torch

from neuron_emu.lazy.decompositions import _register

aten = torch.ops.aten


def _gates(input_gates, hidden_gates, input_bias, hidden_bias):
    g = input_gates + hidden_gates
    if input_bias is not None:
        g = g + (input_bias + hidden_bias)
    return g


@_register(aten._thnn_fused_lstm_cell.default)
def fused_lstm_cell(input_gates, hidden_gates, cx, input_bias=None, hidden_bias=None):
    i, f, g, o = _gates(input_gates, hidden_gates, input_bias, hidden_bias).chunk(4, 1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    cy = f * cx + i * g
    hy = o * torch.tanh(cy)
    return hy, cy, torch.cat([i, f, g, o], 1)


@_register(aten._thnn_fused_lstm_cell_backward_impl.default)
def fused_lstm_cell_backward(grad_hy, grad_cy, cx, cy, workspace, has_bias):
    i, f, g, o = workspace.chunk(4, 1)
    t = torch.tanh(cy)
    gc = grad_cy if grad_cy is not None else torch.zeros_like(cy)
    go = torch.zeros_like(cy)
    if grad_hy is not None:
        gc = gc + grad_hy * o * (1 - t * t)
        go = grad_hy * t * (1 - o) * o
    grad_gates = torch.cat([gc * g * (1 - i) * i, gc * cx * (1 - f) * f, gc * i * (1 - g * g), go], 1)
    return grad_gates, gc * f, grad_gates.sum(0) if has_bias else None


@_register(aten._thnn_fused_gru_cell.default)
def fused_gru_cell(input_gates, hidden_gates, hx, input_bias=None, hidden_bias=None):
    if input_bias is not None:
        input_gates, hidden_gates = input_gates + input_bias, hidden_gates + hidden_bias
    ir, iz, in_ = input_gates.chunk(3, 1)
    hr, hz, hn = hidden_gates.chunk(3, 1)
    r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
    n = torch.tanh(in_ + r * hn)
    hy = n + z * (hx - n)
    return hy, torch.cat([r, z, n, hx, hn], 1)


@_register(aten._thnn_fused_gru_cell_backward.default)
def fused_gru_cell_backward(grad_hy, workspace, has_bias):
    r, z, n, hx, hn = workspace.chunk(5, 1)
    gz = grad_hy * (hx - n) * (1 - z) * z
    gn = grad_hy * (1 - z) * (1 - n * n)
    gr = gn * hn * (1 - r) * r
    grad_input = torch.cat([gr, gz, gn], 1)
    grad_hidden = torch.cat([gr, gz, gn * r], 1)
    bias = (grad_input.sum(0), grad_hidden.sum(0)) if has_bias else (None, None)
    return (grad_input, grad_hidden, grad_hy * z) + bias
