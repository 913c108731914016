"""trace(optimizations=[Optimization.FLOAT32_TO_FLOAT16]) (docs/reference/neuron-api.md 1.1: "casts fp32 I/O to
fp16; model then accepts fp32 and fp16").

Each compiled subgraph's fp32 inputs and outputs become fp16 at its boundary: the subgraph graph gets an fp16 input
and a cast to fp32 as its first op, and a cast to fp16 after each fp32 result (`cast_io_to_fp16`), so the program
computes as before (under --fast-math) between two fp16 roundings. The artifact's header says so
(`FP16_IO_HEADER`), and the runtime then also accepts fp32 for those inputs, rounding them to fp16 as it copies
them in (runtime/model.py), which is why the saved model keeps the behaviour. CPU ops between subgraphs read the
dtype they were traced with (partitioner/module.py casts an fp16 subgraph result back to fp32 for them).
ASSUMPTION: the traced model's outputs that a Neuron subgraph produces stay fp16 (the documented fp16 I/O); outputs
of CPU ops keep their dtype."""
from __future__ import annotations

import enum

import torch

from neuron_emu.compiler.ir import Graph, Node, Value
from neuron_emu.runtime.model import FP16_IO_HEADER  # noqa: F401  (the header field the runtime reads)


class Optimization(enum.Enum):
    """trace(optimizations=[...]); FLOAT32_TO_FLOAT16 is the only documented member [api 1.1]."""
    FLOAT32_TO_FLOAT16 = 1


def parse_optimizations(optimizations) -> bool:
    """Whether FLOAT32_TO_FLOAT16 is asked for; anything else in the list is an error naming it."""
    if optimizations is None:
        return False
    if isinstance(optimizations, Optimization):
        optimizations = [optimizations]
    fp16 = False
    for o in optimizations:
        if o is Optimization.FLOAT32_TO_FLOAT16:
            fp16 = True
        else:
            raise TypeError(f"optimizations: {o!r} is not a torch_neuron.Optimization (the only member is "
                            "Optimization.FLOAT32_TO_FLOAT16)")
    return fp16


def cast_io_to_fp16(graph: Graph) -> Graph:
    """Rewrite a subgraph's graph in place so that its fp32 inputs and outputs are fp16 (module docstring)."""
    next_id = [1 + max([v.id for v in graph.inputs] + [o.id for n in graph.nodes for o in n.outputs]
                       + [a.id for n in graph.nodes for a in n.value_args()] + [v.id for v in graph.outputs])]

    def new_id():
        next_id[0] += 1
        return next_id[0]

    to_copy = torch.ops.aten._to_copy.default
    head = []
    for i, v in enumerate(graph.inputs):
        if v.dtype != torch.float32:
            continue
        half = Value(new_id(), v.shape, torch.float16, "input", index=i)
        n = Node(to_copy, (half,), {"dtype": torch.float32}, [v], "<FLOAT32_TO_FLOAT16: fp16 input>")
        v.kind, v.index, v.node = "node", -1, n  # the old input is now the cast's result: its readers are unchanged
        graph.inputs[i] = half
        head.append(n)
    casts, tail = {}, []
    for i, v in enumerate(graph.outputs):
        if v.dtype != torch.float32:
            continue
        if v.id not in casts:
            out = Value(new_id(), v.shape, torch.float16, "node")
            out.node = Node(to_copy, (v,), {"dtype": torch.float16}, [out], "<FLOAT32_TO_FLOAT16: fp16 output>")
            casts[v.id] = out
            tail.append(out.node)
        graph.outputs[i] = casts[v.id]
    graph.nodes[:0] = head
    graph.nodes.extend(tail)
    return graph
