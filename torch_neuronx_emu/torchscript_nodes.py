"""The TorchScript view of a model that torch_neuronx.analyze reports on (the SDK traces the model with
torch.jit.trace and checks each operator of that graph): the inlined trace graph, the value every node computed
on the example inputs, and each node cut out as a one-node TorchScript function to run on its own."""
from __future__ import annotations

import warnings
from typing import Any, Dict, List, Tuple

import torch


def inlined_trace_graph(func, inputs: tuple) -> Tuple[torch._C.Graph, list]:
    """torch.jit.trace `func` (strict=False: dict outputs, as Hugging Face models give) and inline every call.
    Returns the graph and the values of its inputs: the example inputs, then, for a module, its parameters and
    buffers (lowered to graph inputs, so the graph is a plain function)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # capture warns about the same specialisations
        warnings.simplefilter("ignore", DeprecationWarning)       # "torch.jit.trace is deprecated": the SDK uses it
        traced = torch.jit.trace(func, inputs, strict=False, check_trace=False)
    if isinstance(traced, torch.jit.ScriptModule):
        graph, params = torch._C._jit_pass_lower_graph(traced.forward.graph, traced._c)
        extra = list(params)
    else:
        graph, extra = traced.graph.copy(), []
    torch._C._jit_pass_inline(graph)
    return graph, list(inputs) + extra


def _return_tuple(graph: torch._C.Graph, values: list) -> None:
    """Make `graph` return exactly `values`, as one tuple (a function returns one value)."""
    while len(list(graph.outputs())):
        graph.eraseOutput(0)
    tup = graph.insertNode(graph.create("prim::TupleConstruct", values, 1))
    tup.output().setType(torch._C.TupleType([v.type() for v in values]))
    graph.registerOutput(tup.output())


def node_values(graph: torch._C.Graph, input_values: list) -> Dict[int, Any]:
    """{Value.unique(): what it held} for every input and node output of `graph`, from one run of a copy of the
    graph that returns all of them."""
    every = [v for n in graph.nodes() for v in n.outputs()]
    copy = graph.copy()
    copied = [v for n in copy.nodes() for v in n.outputs()]   # a copy keeps the node order
    _return_tuple(copy, copied)
    results = torch._C._create_function_from_graph("all_values", copy)(*input_values)
    values = {v.unique(): x for v, x in zip(graph.inputs(), input_values)}
    values.update({v.unique(): x for v, x in zip(every, results)})
    return values


def isolate(node: torch._C.Node) -> Tuple[torch._C.Graph, List[torch._C.Value]]:
    """A fresh graph holding `node` alone: its constant inputs cloned in, its other inputs graph inputs; it
    returns the tuple of the node's outputs. Also returns the original values the graph inputs stand for."""
    g = torch._C.Graph()
    mapped: Dict[int, torch._C.Value] = {}
    sources: List[torch._C.Value] = []
    for v in node.inputs():
        if v.unique() in mapped:
            continue
        if v.node().kind() == "prim::Constant":
            mapped[v.unique()] = g.insertNode(g.createClone(v.node(), lambda x: x)).output()
        else:
            mapped[v.unique()] = g.addInput().setType(v.type())
            sources.append(v)
    clone = g.insertNode(g.createClone(node, lambda x: mapped[x.unique()]))
    _return_tuple(g, list(clone.outputs()))
    return g, sources


def one_node_function(node: torch._C.Node):
    """(`node` as a callable TorchScript function of its non-constant inputs, those inputs, its graph text)."""
    g, sources = isolate(node)
    return torch._C._create_function_from_graph(node.kind().replace("::", "_"), g), sources, str(g)


def is_counted(node: torch._C.Node) -> bool:
    """The nodes analyze counts: ATen operators (prim:: nodes, constants and list/tuple plumbing are not)."""
    return node.kind().startswith("aten::")
