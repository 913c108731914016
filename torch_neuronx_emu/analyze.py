"""torch_neuronx.analyze (neuron-api.md 2.6): which operators of a model the (emulated) Neuron compiler supports,
without producing a model.

As the SDK does, the model is traced with torch.jit.trace (strict=False) and inlined, and each `aten::` node of
that TorchScript graph is one operator (`aten::linear`, `aten::relu`, `aten::sort`, also `aten::size`/`aten::Int`
shape arithmetic; prim:: nodes and constants are not counted). A node's support is decided the way our compiler
decides it: the node is cut out as a one-node TorchScript function (torchscript_nodes.py) and run on the values
it saw in the model under capture (compiler/capture.py, the front end of trace); it is supported iff every
dispatcher operator that run records and that depends on the node's inputs (the rest the compiler folds) passes
`is_supported` (a lowering, not in compiler/rejected.py, no complex tensor). A node with no tensor input or
output, whose run records nothing, or whose tensor inputs do not depend on the model's inputs (folded:
compiler/fold.py) is supported. Where functorch cannot run the TorchScript call under capture (a `Tensor?[]`
argument, aten::index) the node's ATen overload is called from Python instead; a node that cannot be run alone
at all is judged by `is_supported`'s rule applied to its own ATen operator (a warning says so); a model
torch.jit.trace cannot trace is reported on the dispatcher operators capture records (`aten::addmm`), with a
warning. Nodes of one operator on the same types and constants are judged once."""
import json
import os
import re
import shutil
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set

import torch
from torch.utils import _pytree as pytree

import neuron_emu
from neuron_emu.compiler import graph_text
from neuron_emu.compiler.capture import capture
from neuron_emu.compiler.lowering import lookup
from neuron_emu.compiler.options import EMULATED_NEURONX_CC_VERSION
from neuron_emu.compiler.rejected import rejection
from torch_neuronx_emu.torchscript_nodes import (carries_tensor, inlined_trace_graph, is_counted, node_values,
                                                 one_node_function)
from torch_neuronx_emu.trace import _normalize_inputs

__all__ = ["analyze"]

# ASSUMPTION: the SDK's value is "<torch version>.<torch-neuronx release>"; the emulator puts its own release there
TORCH_NEURONX_VERSION = f"{torch.__version__.split('+')[0]}.{neuron_emu.__version__}"
REPORT_FILE = "analyze.json"


def is_supported(node) -> bool:
    """Whether the emulated neuronx-cc compiles captured `node`: it has a lowering, the real compiler does not
    reject it (compiler/rejected.py) and no tensor it touches is complex. (PartitionerConfig places nodes by this.)"""
    if lookup(node.target) is None or rejection(node.name):
        return False
    return not any(v.dtype.is_complex for v in node.value_args() + node.outputs)


@dataclass
class Operator:
    """One counted operator of the model: a TorchScript node (or, without a TorchScript graph, a captured node)."""
    kind: str
    supported: bool
    call: str
    op_graph: str
    dispatched: List[str] = field(default_factory=list)   # the dispatcher ops its run recorded, in order


def _tensors(x) -> bool:
    return any(isinstance(t, torch.Tensor) for t in pytree.tree_leaves(x))


def _run_captured(fn, args: list):
    """The graph capture records running `fn(*args)`: tensors in `args` (also inside lists) are capture inputs,
    everything else is bound as is; the tensors `fn` returns are the outputs."""
    leaves, spec = pytree.tree_flatten(args)
    slots = [i for i, x in enumerate(leaves) if isinstance(x, torch.Tensor)]

    def call(*tensors):
        filled = list(leaves)
        for i, t in zip(slots, tensors):
            filled[i] = t
        out = fn(*pytree.tree_unflatten(filled, spec))
        return tuple(t for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # a lone in-place node "mutates its input": expected here
        graph, _ = capture(call, tuple(leaves[i].clone() for i in slots))  # clones: in-place nodes stay local
    return graph


def _compiled_nodes(graph) -> list:
    """The recorded nodes the compiler would compile: those depending on an input (the others it folds, e.g. the
    `scalar_tensor` of a Python number, compiler/fold.py)."""
    live, out = {v.id for v in graph.inputs}, []
    for n in graph.nodes:
        if any(a.id in live for a in n.value_args()):
            live.update(o.id for o in n.outputs)
            out.append(n)
    return out


def _kind_supported(node: torch._C.Node, values: Dict[int, Any]) -> bool:
    """Fallback for a node that cannot run alone: `is_supported`'s rule on its own ATen operator."""
    packet = getattr(torch.ops.aten, node.kind().split("::", 1)[1], None)
    if packet is None or lookup(packet) is None or rejection(node.kind()):
        return False
    seen = [values.get(v.unique()) for v in list(node.inputs()) + list(node.outputs())]
    return not any(t.dtype.is_complex for t in pytree.tree_leaves(seen) if isinstance(t, torch.Tensor))


def _overload(node: torch._C.Node):
    """The ATen overload a TorchScript node calls (from its schema), or None."""
    try:
        schema = torch._C.parse_schema(node.schema())
    except RuntimeError:   # "(no schema)"
        return None
    packet = getattr(torch.ops.aten, schema.name.split("::", 1)[1], None)
    return getattr(packet, schema.overload_name or "default", None) if packet is not None else None


def _signature(text: str) -> str:
    """A one-node graph's text without value names, scopes and source lines: equal for the same operator on the
    same types and constants (the 12 layers of a BERT), which are judged once."""
    names: Dict[str, str] = {}
    text = re.sub(r"(, scope: \S+)?( # .*)?$", "", text, flags=re.M)
    return re.sub(r"%[\w.]+", lambda m: names.setdefault(m.group(0), f"%{len(names)}"), text)


def _judge(node: torch._C.Node, values: Dict[int, Any], seen: Dict[str, Operator]) -> Operator:
    call = node.sourceRange() or "<unknown>"
    try:
        fn, sources, text = one_node_function(node)
        args = [values[v.unique()] for v in sources]
        outs = [values.get(v.unique()) for v in node.outputs()]
        if not _tensors(args) and not _tensors(outs):
            return Operator(node.kind(), True, call, text)
        same = seen.get(_signature(text))
        if same is not None:
            return Operator(node.kind(), same.supported, call, text, same.dispatched)
        try:
            recorded = _run_captured(fn, args)
        except Exception:  # noqa: BLE001
            # functorch's functionalize cannot unwrap a Tensor?[] inside a TorchScript call (aten::index): the
            # same node's ATen overload called from Python on the same values records the same ops
            op = _overload(node)
            if op is None:
                raise
            recorded = _run_captured(op, [values[v.unique()] for v in node.inputs()])
    except Exception as e:  # noqa: BLE001 -- the node cannot be isolated: judge it by its operator alone
        warnings.warn(f"analyze: {node.kind()} ({call.splitlines()[0] if call else '?'}) could not be run on its "
                      f"own ({type(e).__name__}: {e}); judged by its ATen operator's lowering instead")
        return Operator(node.kind(), _kind_supported(node, values), call, str(node))
    op = Operator(node.kind(), all(is_supported(n) for n in _compiled_nodes(recorded)), call, text,
                  [n.name for n in recorded.nodes])
    seen[_signature(text)] = op
    return op


def torchscript_operators(func, inputs: tuple) -> Optional[List[Operator]]:
    """The counted nodes of `func`'s inlined trace graph, judged; None if torch.jit.trace cannot trace it."""
    try:
        graph, input_values = inlined_trace_graph(func, inputs)
        values = node_values(graph, input_values)
    except Exception as e:  # noqa: BLE001 -- jit.trace refuses things capture accepts (e.g. odd output types)
        warnings.warn(f"analyze: torch.jit.trace could not trace the model ({type(e).__name__}: {e}); reporting the "
                      f"dispatcher operators of the emulator's capture instead")
        return None
    live = {v.unique() for v in list(graph.inputs())[:len(inputs)]}   # values that depend on the model's inputs
    ops, seen = [], {}
    for n in graph.nodes():
        folded = not any(v.unique() in live for v in n.inputs())
        if not folded:   # only tensors carry the dependence: capture specialises a size or a scalar to the example
            live.update(v.unique() for v in n.outputs() if carries_tensor(v.type()))
        if is_counted(n):
            # a node of constants only (an arange for a mask) is folded by the compiler (compiler/fold.py)
            ops.append(Operator(n.kind(), True, n.sourceRange() or "<unknown>", str(n)) if folded
                       else _judge(n, values, seen))
    return ops


def captured_operators(graph) -> List[Operator]:
    """The dispatcher-level operators of a captured graph (fallback when there is no TorchScript graph)."""
    return [Operator(n.name, is_supported(n), n.where, graph_text(graph, [n]), [n.name]) for n in graph.nodes]


def model_operators(func, inputs: tuple, graph=None) -> List[Operator]:
    """TorchScript operators of the model; the captured graph's (captured now if not given) if it has none."""
    ops = torchscript_operators(func, inputs)
    if ops is None:
        ops = captured_operators(graph if graph is not None else capture(func, inputs)[0])
    return ops


def analyze(func, example_inputs, compiler_workdir=None, *, additional_ignored_ops: Set[str] = set(),
            max_workers: int = 4, is_hf_transformers: bool = False, cleanup: bool = False) -> Dict[str, Any]:
    """Report operator support for `func(*example_inputs)`: {"torch_neuronx_version", "neuronx_cc_version",
    "support_percentage", "supported_operators": {op: count}, "unsupported_operators": [{"kind", "failureAt",
    "call", "opGraph"}]}. `additional_ignored_ops` ("aten::<op>") are left out of the counts. With
    `compiler_workdir` the report is also written there (analyze.json); `cleanup=True` removes the directory
    afterwards. `max_workers` and `is_hf_transformers` are accepted for compatibility (nodes are judged one after
    the other: capture is not thread-safe; Hugging Face dict outputs are traced with strict=False)."""
    if not isinstance(additional_ignored_ops, (set, frozenset, list, tuple)) or not all(
            isinstance(o, str) for o in additional_ignored_ops):
        raise TypeError("additional_ignored_ops must be a set of operator names such as 'aten::sort'")
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise ValueError(f"max_workers must be a positive integer, got {max_workers!r}")
    ops = model_operators(func, _normalize_inputs(example_inputs))
    report = operators_report(ops, set(additional_ignored_ops))
    write_report(report, compiler_workdir, cleanup)
    return report


def operators_report(ops: List[Operator], ignored: Set[str]) -> Dict[str, Any]:
    """The analyze report for judged operators (kinds named in `ignored` left out of the counts)."""
    supported: Dict[str, int] = {}
    unsupported = []
    for op in ops:
        if op.kind in ignored:
            continue
        if op.supported:
            supported[op.kind] = supported.get(op.kind, 0) + 1
        else:
            unsupported.append({"kind": op.kind, "failureAt": "neuronx-cc", "call": op.call, "opGraph": op.op_graph})
    total = sum(supported.values()) + len(unsupported)
    return {
        "torch_neuronx_version": TORCH_NEURONX_VERSION,
        "neuronx_cc_version": EMULATED_NEURONX_CC_VERSION,
        "support_percentage": f"{100.0 * sum(supported.values()) / total if total else 100.0:.2f}%",
        "supported_operators": dict(sorted(supported.items())),
        "unsupported_operators": unsupported,
    }


def write_report(report: Dict[str, Any], compiler_workdir, cleanup: bool = False) -> None:
    if compiler_workdir:
        os.makedirs(compiler_workdir, exist_ok=True)
        with open(os.path.join(compiler_workdir, REPORT_FILE), "w") as f:
            json.dump(report, f, indent=2)
        if cleanup:
            shutil.rmtree(compiler_workdir, ignore_errors=True)
