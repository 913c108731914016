"""Auto-cast reference: re-run a captured graph in PyTorch eager applying the same casts the
compiler applies, as the test oracle for auto-cast numerics (torch does the arithmetic and the
rounding; this file only states the policy).

Policy (neuronx-cc --auto-cast, see options.py):
  none     everything fp32.
  matmult  TensorE ops (mm, addmm, bmm, baddbmm, convolution, and the two products inside fused
           attention) read their operands rounded to the cast type and accumulate in fp32; results stay fp32.
  all      additionally every fp32 op reads cast-type inputs (model inputs and constants are cast)
           and its fp32 result is rounded to the cast type.
"""
from __future__ import annotations

from typing import List

import torch
from torch.utils import _pytree as pytree

from neuron_emu.compiler.ir import Graph, Value
from neuron_emu.compiler.options import CompilerOptions
from neuron_emu.dtypes import torch_dtype

aten = torch.ops.aten
MATMUL_OPS = {aten.mm, aten.addmm, aten.bmm, aten.baddbmm, aten.convolution, aten._convolution}


def round_tensor(t: torch.Tensor, cast_type: str) -> torch.Tensor:
    if t.dtype != torch.float32:
        return t
    if cast_type == "tf32":  # 10-bit mantissa, round to nearest even (torch has no tf32 dtype)
        bits = t.contiguous().view(torch.int32)
        lsb = (bits >> 13) & 1
        rounded = ((bits + 0xFFF + lsb) & ~0x1FFF).view(torch.float32)
        finite = torch.isfinite(t)
        return torch.where(finite, rounded, t)
    return t.to(torch_dtype(cast_type)).to(torch.float32)


ATTENTION_OPS = {aten._scaled_dot_product_flash_attention_for_cpu, aten.scaled_dot_product_attention,
                 aten._scaled_dot_product_attention_math, aten._scaled_dot_product_efficient_attention}


def _attention(target, args, kwargs, cast: str):
    """Fused attention spelled out with its two TensorE products reading cast operands (lowering/attention.py):
    scores = round(q) @ round(k)^T * scale, masks, softmax (zeros on fully masked rows), round(p) @ round(v)."""
    a = {arg.name: (args[i] if i < len(args) else kwargs.get(arg.name, arg.default_value))
         for i, arg in enumerate(target._schema.arguments)}
    q, k, v = a["query"], a["key"], a["value"]
    mask = a.get("attn_mask", a.get("attn_bias"))
    if k.dim() >= 3 and k.shape[-3] != q.shape[-3]:  # grouped-query heads
        k = k.repeat_interleave(q.shape[-3] // k.shape[-3], -3)
        v = v.repeat_interleave(q.shape[-3] // v.shape[-3], -3)
    scale = a.get("scale") or 1.0 / q.shape[-1] ** 0.5
    scores = round_tensor(q, cast) @ round_tensor(k, cast).transpose(-2, -1) * scale
    L, S = scores.shape[-2:]
    if a.get("is_causal"):
        scores = scores.masked_fill(~torch.ones(L, S, dtype=torch.bool).tril(), float("-inf"))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    probs = aten._safe_softmax(scores, -1)
    out = round_tensor(probs, cast) @ round_tensor(v, cast)
    lse = torch.logsumexp(scores, -1)
    lse = torch.where(torch.isinf(lse), torch.zeros_like(lse), lse)
    packet = target.overloadpacket
    if packet is aten.scaled_dot_product_attention:
        return out
    if packet is aten._scaled_dot_product_attention_math:
        return out, probs
    return out, lse


def run_reference(graph: Graph, options: CompilerOptions, inputs) -> List[torch.Tensor]:
    cast = options.auto_cast_type
    all_ops = options.auto_cast == "all"
    env = {}

    def val(v: Value):
        if v.id in env:
            return env[v.id]
        t = v.const  # (compile_graph has folded constant nodes into constants)
        if t is None:
            raise RuntimeError(f"value %{v.id} unavailable")
        return round_tensor(t, cast) if all_ops else t

    for v, x in zip(graph.inputs, inputs):
        env[v.id] = round_tensor(x, cast) if all_ops else x
    with torch.no_grad():
        for n in graph.nodes:
            if n.outputs and all(o.kind == "const" for o in n.outputs):
                continue  # folded at compile time: used as the constant it is
            args, kwargs = pytree.tree_map(lambda a: val(a) if isinstance(a, Value) else a, (n.args, n.kwargs))
            if options.auto_cast != "none" and n.target.overloadpacket in MATMUL_OPS:
                args = list(args)
                idx = (0, 1) if n.target.overloadpacket in (aten.mm, aten.bmm, aten.convolution, aten._convolution) else (1, 2)
                for i in idx:
                    args[i] = round_tensor(args[i], cast)
            if options.auto_cast != "none" and n.target.overloadpacket in ATTENTION_OPS:
                out = _attention(n.target, args, kwargs, cast)
            else:
                out = n.target(*args, **kwargs)
            outs = [o for o in pytree.tree_leaves(out) if isinstance(o, torch.Tensor)]
            for v, o in zip(n.outputs, outs):
                env[v.id] = round_tensor(o, cast) if all_ops else o
    return [val(v) for v in graph.outputs]
