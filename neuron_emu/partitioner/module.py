"""The partitioned model as a TorchScript module: a plan interpreter traced with torch.jit.trace.

`PartitionedModule.forward` walks the plan: a CPU node calls its ATen op (the tracer records an `aten::` node), a
compiled segment calls `neuron::forward_v2` (`neuron::forward_1` for Inf1) with its artifact (a buffer of the module,
saved with it). Constants the CPU ops read are buffers too, so the saved module holds them once."""
from __future__ import annotations

import warnings
from typing import Any, List

import torch
from torch.utils import _pytree as pytree

import neuron_emu.runtime  # noqa: F401  (registers neuron::forward_v2)
from neuron_emu.compiler.ir import Value
from neuron_emu.partitioner.segments import Plan, Segment


class _Artifact(torch.nn.Module):
    def __init__(self, neff: torch.Tensor):
        super().__init__()
        self.register_buffer("neff", neff, persistent=True)


class PartitionedModule(torch.nn.Module):
    def __init__(self, steps: list, inputs: List[Value], outputs: List[Value], out_spec: Any,
                 neffs: List[torch.Tensor], op: str = "forward_v2"):
        super().__init__()
        self.op = op   # neuron::forward_v2 (torch_neuronx) or neuron::forward_1 (torch_neuron)
        self._steps = steps
        self._inputs = inputs
        self._outputs = outputs
        self.out_spec = out_spec
        self._const_names = {}
        for k, neff in enumerate(neffs):  # `subgraph_k.neff`: found by the placement tools as any trace's `neff`
            self.add_module(f"subgraph_{k}", _Artifact(neff))
        for v in self._values_read():
            if v.kind == "const" and v.id not in self._const_names:
                name = f"const_{len(self._const_names)}"
                self.register_buffer(name, v.const, persistent=True)
                self._const_names[v.id] = name

    def _values_read(self):
        for st in self._steps:
            if not isinstance(st, Segment):
                yield from st.value_args()
        yield from self._outputs

    def forward(self, *inputs):
        def segment(k, seg, xs):
            return getattr(torch.ops.neuron, self.op)(xs, getattr(self, f"subgraph_{k}").neff)
        flat = execute(self._steps, self._inputs, self._outputs, inputs, segment,
                       lambda v: getattr(self, self._const_names[v.id]))
        return pytree.tree_unflatten(flat, self.out_spec)


def execute(steps: list, inputs: List[Value], outputs: List[Value], args: tuple, run_segment, const) -> list:
    """Walk a plan: CPU nodes call their ATen op, segment k runs as `run_segment(k, segment, inputs)`; `const(v)`
    gives a constant's tensor. Returns the flat outputs. (The module's forward and the test oracle share it.)"""
    env = {v.id: x for v, x in zip(inputs, args)}

    def get(v):
        if isinstance(v, Value):
            return const(v) if v.kind == "const" else env[v.id]
        return v

    def get_cpu(v):  # a CPU op reads the dtype it was traced with (a subgraph may return fp16 for an fp32 value:
        x = get(v)   # torch_neuron's FLOAT32_TO_FLOAT16)
        return x.to(v.dtype) if isinstance(v, Value) and x.dtype != v.dtype else x
    k = 0
    for st in steps:
        if isinstance(st, Segment):
            res = run_segment(k, st, [env[v.id] for v in st.inputs])
            k += 1
            for v, r in zip(st.outputs, res):
                env[v.id] = r
        else:
            a, kw = pytree.tree_map(get_cpu, (st.args, st.kwargs))
            res = st.target(*a, **kw)
            for v, r in zip(st.outputs, [r for r in pytree.tree_leaves(res) if isinstance(r, torch.Tensor)]):
                env[v.id] = r
    return [get(v) for v in outputs]


def build_module(inputs: List[Value], outputs: List[Value], out_spec: Any, plan: Plan, neffs: List[torch.Tensor],
                 example_inputs: tuple, op: str = "forward_v2", **trace_kwargs) -> torch.jit.ScriptModule:
    """Trace the plan interpreter, with `neffs[k]` the artifact of `plan.segments[k]`, on `example_inputs` into the
    TorchScript module the user saves and loads."""
    module = PartitionedModule(plan.steps, inputs, outputs, out_spec, neffs, op)
    trace_kwargs.setdefault("strict", False)
    trace_kwargs.setdefault("check_trace", False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.trace(module, example_inputs, **trace_kwargs)


def module_from_plan(model, graph, plan: Plan, neffs: List[torch.Tensor], inputs: tuple, trace_kwargs=None,
                     op: str = "forward_v2"):
    """The TorchScript module for a plan: one Neuron op when the whole model compiled as one subgraph, a
    partitioned module (neuron::`op` + aten:: CPU ops) otherwise, a CPU trace of `model` when nothing
    compiled. (Shared by torch_neuron's fallback and torch_neuronx's PartitionerConfig.)"""
    from neuron_emu.tracing import wrap_artifact  # (tracing imports the compiler; keep this module light)
    trace_kwargs = dict(trace_kwargs or {})
    if not plan.segments:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trace_kwargs.setdefault("strict", False)
            return torch.jit.trace(model, inputs, **trace_kwargs)
    seg = plan.segments[0]
    if not plan.cpu_nodes and len(plan.segments) == 1 and seg.outputs == list(graph.outputs) \
            and all(v.kind == "input" for v in seg.inputs) \
            and [v.index for v in seg.inputs] == list(range(len(graph.inputs))):
        return wrap_artifact(neffs[0], graph.out_spec, inputs, op=op)  # the whole model is one Neuron op
    return build_module(graph.inputs, graph.outputs, graph.out_spec, plan, neffs, inputs, op, **trace_kwargs)
