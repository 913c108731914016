"""Pass: fold inference batch norm into the preceding convolution, as neuronx-cc does.

conv(x, W, b) -> bn(mean, var, gamma, beta, eps) becomes conv(x, W*s, (b - mean)*s + beta) with
s = gamma / sqrt(var + eps), when the convolution's weights are constants and its output feeds only
the batch norm. The batch-norm node becomes an alias (free)."""
from __future__ import annotations

from typing import List

import torch
from torch.utils import _pytree as pytree

from neuron_emu.compiler.ir import Graph, Node, Value

aten = torch.ops.aten
_BN = {aten._native_batch_norm_legit_no_training.default, aten.native_batch_norm.default}


def _const(t: torch.Tensor, next_id: List[int]) -> Value:
    next_id[0] += 1
    return Value(next_id[0], tuple(t.shape), t.dtype, "const", const=t)


def fold_batchnorm(graph: Graph, nodes: List[Node]) -> None:
    uses: dict = {}
    for n in nodes:
        for a in pytree.tree_leaves((n.args, n.kwargs)):
            if isinstance(a, Value):
                uses[a.id] = uses.get(a.id, 0) + 1
    for v in graph.outputs:
        uses[v.id] = uses.get(v.id, 0) + 1
    next_id = [max([v.id for n in nodes for v in n.outputs] + [v.id for v in graph.inputs] + [0]) + 10 ** 6]
    for n in nodes:
        if n.target not in _BN:
            continue
        if n.target is aten.native_batch_norm.default:
            x, gamma, beta, mean, var, training, _momentum, eps = n.args
            if training:
                continue
        else:
            x, gamma, beta, mean, var, _momentum, eps = n.args
        conv = x.node if isinstance(x, Value) and x.kind == "node" else None
        if conv is None or conv.target is not aten.convolution.default or uses.get(x.id, 0) != 1:
            continue
        w, b = conv.args[1], conv.args[2]
        if not isinstance(w, Value) or w.kind != "const" or (b is not None and (not isinstance(b, Value) or b.kind != "const")):
            continue
        if any(not isinstance(t, Value) or t.kind != "const" for t in (mean, var)) or w.dtype != torch.float32:
            continue
        if any(t is not None and (not isinstance(t, Value) or t.kind != "const") for t in (gamma, beta)):
            continue
        with torch.no_grad():
            scale = 1.0 / torch.sqrt(var.const.double() + eps)
            if gamma is not None:
                scale = scale * gamma.const.double()
            new_w = (w.const.double() * scale.reshape(-1, *([1] * (w.const.dim() - 1)))).float()
            bias0 = b.const.double() if b is not None else torch.zeros_like(scale)
            new_b = (bias0 - mean.const.double()) * scale
            if beta is not None:
                new_b = new_b + beta.const.double()
        args = list(conv.args)
        args[1] = _const(new_w, next_id)
        args[2] = _const(new_b.float(), next_id)
        conv.args = tuple(args)
        n.target = aten.alias.default
        n.args, n.kwargs, n.outputs = (x,), {}, n.outputs[:1]
