"""A segment as a standalone compiler Graph (compiler/ir.py): its outside values become inputs, the values later
steps read become outputs. Nodes are copied with their arguments remapped; the parent graph is not changed."""
from __future__ import annotations

from dataclasses import replace

from torch.utils import _pytree as pytree

from neuron_emu.compiler.ir import Graph, Value
from neuron_emu.partitioner.segments import Segment


def segment_graph(seg: Segment) -> Graph:
    ids = [0]
    remap = {}

    def new_id():
        ids[0] += 1
        return ids[0]

    inputs = []
    for i, v in enumerate(seg.inputs):
        nv = Value(new_id(), tuple(v.shape), v.dtype, "input", index=i)
        remap[v.id] = nv
        inputs.append(nv)

    def arg(a):
        if isinstance(a, Value):
            if a.id in remap:
                return remap[a.id]
            if a.kind == "const":
                nv = Value(new_id(), tuple(a.shape), a.dtype, "const", const=a.const)
                remap[a.id] = nv
                return nv
            raise ValueError(f"segment reads %{a.id} which is neither an input nor produced in it")
        return a

    nodes = []
    for n in seg.nodes:
        args, kwargs = pytree.tree_map(arg, (n.args, n.kwargs))
        m = replace(n, args=args, kwargs=kwargs, outputs=[])
        for o in n.outputs:
            no = Value(new_id(), tuple(o.shape), o.dtype, "node", node=m)
            remap[o.id] = no
            m.outputs.append(no)
        nodes.append(m)
    outputs = [remap[v.id] for v in seg.outputs]
    return Graph(inputs, nodes, outputs, pytree.tree_flatten(list(range(len(outputs))))[1])
