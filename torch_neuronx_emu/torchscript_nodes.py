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
    values.update({v.unique(): _as_typed(v, x) for v, x in zip(every, results)})
    return values


def _as_typed(v: torch._C.Value, x):
    """A 0-dim tensor TorchScript hands back to Python as a number (a "wrapped number" such as the `2` of
    `x * 2`) is a tensor again: the constant's own tensor, or one of the value's recorded dtype."""
    if isinstance(x, torch.Tensor) or not isinstance(x, (int, float, bool)) \
            or not v.type().isSubtypeOf(torch._C.TensorType.get()):
        return x
    if v.node().kind() == "prim::Constant":
        return v.node().t("value")
    dtype = v.type().dtype()
    return torch.tensor(x, dtype=dtype) if dtype is not None else torch.tensor(x)


_PACKING = ("prim::ListConstruct", "prim::TupleConstruct")


def isolate(node: torch._C.Node) -> Tuple[torch._C.Graph, List[torch._C.Value]]:
    """A fresh graph holding `node` alone: its non-tensor constant inputs cloned in, the lists it takes built in
    it (so each tensor of a list is an input of its own), its other inputs graph inputs (a tensor constant too:
    capture then sees an ordinary tensor); it returns the tuple of the node's outputs. Also returns the original
    values the graph inputs stand for."""
    g = torch._C.Graph()
    mapped: Dict[int, torch._C.Value] = {}
    sources: List[torch._C.Value] = []

    def bring(v: torch._C.Value, depth: int) -> torch._C.Value:
        if v.unique() in mapped:
            return mapped[v.unique()]
        producer = v.node()
        if producer.kind() == "prim::Constant" and not v.type().isSubtypeOf(torch._C.TensorType.get()):
            out = g.insertNode(g.createClone(producer, lambda x: x)).output()
        elif producer.kind() in _PACKING and depth == 0:
            for x in producer.inputs():
                bring(x, 1)
            out = g.insertNode(g.createClone(producer, lambda x: mapped[x.unique()])).output()
        else:
            out = g.addInput().setType(v.type())
            sources.append(v)
        mapped[v.unique()] = out
        return out

    for v in node.inputs():
        bring(v, 0)
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


def carries_tensor(t) -> bool:
    """A TorchScript type that is, or holds (list, tuple, optional), a tensor."""
    if t.isSubtypeOf(torch._C.TensorType.get()):
        return True
    return t.kind() in ("ListType", "TupleType", "OptionalType") and any(carries_tensor(c) for c in t.containedTypes())
