"""Pass: constant folding and dead-code elimination on the captured graph.

A node none of whose tensor arguments depends on a model input is folded: its outputs become
constants holding the values they had during capture. Nodes no output depends on are dropped."""
from __future__ import annotations

from typing import List

from torch.utils import _pytree as pytree

from neuron_emu.compiler.capture import Graph, Node, Value


def fold_and_prune(graph: Graph) -> List[Node]:
    dependent = {v.id for v in graph.inputs}
    for n in graph.nodes:
        args = [a for a in pytree.tree_leaves((n.args, n.kwargs)) if isinstance(a, Value)]
        if any(a.id in dependent for a in args):
            dependent.update(o.id for o in n.outputs)
        else:
            for o in n.outputs:
                o.kind, o.const = "const", o.real
    for n in graph.nodes:
        for o in n.outputs:
            if o.kind != "const":
                o.real = None  # drop captured activations: only folded values are kept
    live = {v.id for v in graph.outputs}
    kept: List[Node] = []
    for n in reversed(graph.nodes):
        if n.outputs and n.outputs[0].kind == "const":
            continue
        if any(o.id in live for o in n.outputs):
            kept.append(n)
            for a in pytree.tree_leaves((n.args, n.kwargs)):
                if isinstance(a, Value):
                    live.add(a.id)
    kept.reverse()
    return kept
