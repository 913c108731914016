"""The emulated Neuron compiler: a Graph (ir.py, from any front end) -> validate -> fold -> lower to engine
instructions (auto-cast applied per op) -> weight prefetch -> memory plan -> dependencies -> serialize.
The result is the artifact and its metadata; wrapping it for the user (TorchScript) is the front end's job."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import List

import numpy as np
import torch
from torch.utils import _pytree as pytree

from neuron_emu.compiler import artifact, const_storage
from neuron_emu.compiler.builder import CONSTANT, TV, ProgramBuilder, out_emu
from neuron_emu.compiler.errors import CompilationError, compiler_name, compiling_with
from neuron_emu.compiler.ir import Graph, GraphError, Value  # noqa: F401  (GraphError: re-exported)
from neuron_emu.compiler.fold import fold_and_prune
from neuron_emu.compiler.fold_batchnorm import fold_batchnorm
from neuron_emu.compiler.lowering import lookup
from neuron_emu.compiler.lowering.common import cast_copy, dma_copy
from neuron_emu.compiler.memory import plan_memory
from neuron_emu.compiler.options import CompilerOptions
from neuron_emu.compiler.rejected import cpu_advice, reject, reject_dtype, rejection
from neuron_emu.compiler.schedule import compute_deps, insert_weight_loads
from neuron_emu.dtypes import IO_DTYPES
from neuron_emu.hardware import CORES
from neuron_emu.isa import DType, Instr, IoDType, Op, encode_program, schema



@dataclass
class Compiled:
    blob: torch.Tensor           # the artifact
    graph_text: str
    program_text: str
    n_instructions: int
    compile_seconds: float
    supported: dict              # op name -> count compiled


def _io_dtype(dtype: torch.dtype, what: str) -> IoDType:
    if dtype.is_complex:
        raise reject_dtype(dtype, what)
    if dtype not in IO_DTYPES:
        raise CompilationError(f"{compiler_name()}: error: {what} has dtype {dtype}, which Neuron does not support")
    return IO_DTYPES[dtype]


def graph_text(graph: Graph, nodes) -> str:
    class _Ref(str):
        __repr__ = str.__str__

    def fmt(a):
        return _Ref(f"%{a.id}") if isinstance(a, Value) else a
    lines = [f"graph({', '.join(f'%{v.id}: {str(v.dtype)[6:]}{list(v.shape)}' for v in graph.inputs)}):"]
    for n in nodes:
        args = pytree.tree_map(fmt, (n.args, n.kwargs))
        outs = ", ".join(f"%{o.id}: {str(o.dtype)[6:]}{list(o.shape)}" for o in n.outputs)
        lines.append(f"  {outs} = {n.name}{args[0]}{'' if not args[1] else ' ' + str(args[1])}  # {n.where}")
    lines.append(f"  return ({', '.join(f'%{v.id}' for v in graph.outputs)})")
    return "\n".join(lines) + "\n"


def compile_graph(graph: Graph, options: CompilerOptions, generation: int = 2) -> Compiled:
    """Compile a front end's graph for a NeuronCore generation (1: Inf1, 2: Inf2/Trn1). Folding rewrites the
    graph in place (folded node outputs become constants). Raises GraphError for a graph that breaks the IR
    contract, CompilationError for one the emulated compiler cannot compile (worded as the target's compiler:
    neuron-cc for Inf1, neuronx-cc otherwise)."""
    with compiling_with(options.compiler):
        return _compile_graph(graph, options, generation)


def _compile_graph(graph: Graph, options: CompilerOptions, generation: int) -> Compiled:
    t0 = time.perf_counter()
    try:
        graph.validate()
    except GraphError:  # a graph that also holds an op the real compiler rejects: that op is what to fix first
        for n in graph.nodes:
            if rejection(n.name):
                raise reject(n.name, n.where, [tuple(a.shape) for a in pytree.tree_leaves(n.args)
                                               if isinstance(a, Value)]) from None
        raise
    nodes = fold_and_prune(graph)
    fold_batchnorm(graph, nodes)
    b = ProgramBuilder(options, generation)
    b.options_has_fp32_matmul = CORES[generation].has_fp32_matmul
    b.used_values = {v.id for n in nodes for v in pytree.tree_leaves((n.args, n.kwargs)) if isinstance(v, Value)}
    b.used_values.update(v.id for v in graph.outputs)
    b.graph_targets = {n.target for n in nodes}  # for whole-model rules (custom ops: no torch.sort)
    env: dict = {}

    def tv_of(v: Value) -> TV:
        tv = env.get(v.id)
        if tv is None:
            if v.kind != "const":
                raise CompilationError(f"internal: value %{v.id} used before it was computed")
            tv = b.const(v.const)
            if options.auto_cast == "all" and v.dtype == torch.float32:
                tv = b.rounded_const(tv, options.cast_dtype)  # --auto-cast all casts fp32 constants too
            env[v.id] = tv
        return tv

    b.set_source("<inputs>", "")
    for i, v in enumerate(graph.inputs):
        iod = _io_dtype(v.dtype, f"input {i}")
        tv = b.alloc(v.shape, v.dtype, out_emu(b, v.dtype) if v.dtype != torch.float32 else DType.F32)
        b.emit(Instr(Op.IoIn, [tv.buf], dict(io_index=i, io_dtype=iod, numel=tv.numel)), [], [tv])
        emu = out_emu(b, v.dtype)
        if v.dtype == torch.float32 and emu != DType.F32:  # --auto-cast all: fp32 inputs are cast on the device
            cast = b.alloc(v.shape, v.dtype, emu)
            cast_copy(b, tv, cast)
            tv = cast
        env[v.id] = tv

    counts: dict = {}
    for n in nodes:
        shapes = [tuple(a.shape) for a in pytree.tree_leaves(n.args) if isinstance(a, Value)]
        if rejection(n.name):  # the real neuronx-cc refuses it: never compile it silently (rejected.py)
            raise reject(n.name, n.where, shapes)
        fn = lookup(n.target)
        if fn is None:
            raise CompilationError(
                f"{compiler_name()}: error: operator {n.name} is not supported by the emulated Neuron compiler "
                f"(called from {n.where}, input shapes {shapes}). {cpu_advice()} "
                f"Supported operators: neuron_emu.compiler.supported_operators()")
        b.set_source(n.name, n.where)
        args, kwargs = pytree.tree_map(lambda a: tv_of(a) if isinstance(a, Value) else a, (n.args, n.kwargs))
        try:
            res = fn(b, n, *args, **kwargs)
        except CompilationError:
            raise
        except Exception as e:
            raise CompilationError(f"{compiler_name()}: error: cannot compile {n.name} with input shapes "
                                   f"{shapes} "
                                   f"(called from {n.where}): {e}") from e
        res = res if isinstance(res, (tuple, list)) else (res,)
        for o, r in zip(n.outputs, res):
            if r is not None:
                if tuple(r.shape) != tuple(o.shape):
                    raise CompilationError(f"internal: {n.name} lowered to shape {r.shape}, expected {o.shape}")
                env[o.id] = r.with_dtype(o.dtype)
        counts[n.name] = counts.get(n.name, 0) + 1

    b.set_source("<outputs>", "")
    for i, v in enumerate(graph.outputs):
        iod = _io_dtype(v.dtype, f"output {i}")
        tv = tv_of(v)
        if not (tv.offset == 0 and tv.is_contiguous()):
            out = b.alloc(tv.shape, tv.dtype, tv.emu)
            dma_copy(b, tv, out)
            tv = out
        b.emit(Instr(Op.IoOut, [tv.buf], dict(io_index=i, io_dtype=iod, numel=tv.numel)), [tv], [])

    _check_engines(b, generation)
    insert_weight_loads(b)
    offsets, arena, extra = plan_memory(b.buf_numel, b.buf_kind, b.reads, b.writes)
    compute_deps(b, extra)
    rows, deps = encode_program(b.instrs)

    used = set()
    for rs, ws in zip(b.reads, b.writes):
        used.update(rs)
        used.update(ws)
    buffers = np.zeros((len(b.buf_numel), 3), dtype=np.int64)
    sections = {"instrs": rows, "deps": deps}
    halves = const_storage.half_kinds(b.instrs, b.const_emu)  # weights stored in their cast type
    for i, (numel, kind) in enumerate(zip(b.buf_numel, b.buf_kind)):
        if kind == CONSTANT and i not in used:
            numel = 0  # never read: not stored
        stored = halves.get(i, kind) if kind == CONSTANT else kind
        buffers[i] = (numel, stored, offsets[i] if kind != CONSTANT else 0)
        if kind == CONSTANT and numel:
            data = b.const_data[i]
            sections[f"const.{i}"] = const_storage.half_data(data, stored) if stored != CONSTANT else data
    sections["buffers"] = buffers
    meta = {
        "compiler": {"name": options.compiler, "version": options.compiler_version, "args": options.argv,
                     "target": options.target, "auto_cast": options.auto_cast, "auto_cast_type": options.auto_cast_type},
        "core_generation": generation,
        "arena_floats": int(arena),
        "inputs": [{"name": f"input{i}", "shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")}
                   for i, v in enumerate(graph.inputs)],
        "outputs": [{"name": f"output{i}", "shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")}
                    for i, v in enumerate(graph.outputs)],
        "ops": artifact.op_names(b.instrs),
        "source_ops": b.src_names,
        "source_where": b.src_where,
    }
    if graph.weight_names:  # inline_weights_to_neff=False: the trailing inputs are weights, named here
        meta["weights"] = graph.weight_names
    blob = artifact.serialize(meta, sections)
    return Compiled(blob, graph_text(graph, nodes), program_listing(b), len(b.instrs), time.perf_counter() - t0, counts)


def _check_engines(b: ProgramBuilder, generation: int) -> None:
    """A program asking this core for an engine it lacks is refused here, naming the op, not at the first call."""
    core = CORES[generation]
    for ins in b.instrs:
        engine = schema(ins.op).engine
        if engine not in core.engines:
            src = b.src_names[ins.src] if 0 <= ins.src < len(b.src_names) else "?"
            where = b.src_where[ins.src] if 0 <= ins.src < len(b.src_where) else ""
            raise CompilationError(f"{compiler_name()}: error: cannot compile {src} for {core.name}: it was lowered "
                                   f"to {ins.name} on {engine}, which {core.name} does not have (engines: {', '.join(core.engines)})"
                                   + (f" (called from {where})" if where else ""))


def program_listing(b: ProgramBuilder) -> str:
    lines = []
    for i, ins in enumerate(b.instrs):
        src = b.src_names[ins.src] if 0 <= ins.src < len(b.src_names) else ""
        fields = " ".join(f"{k}={int(v) if not isinstance(v, float) else v}" for k, v in ins.fields.items())
        lines.append(f"{i:6d} {schema(ins.op).engine:8s} {ins.name:13s} bufs={ins.operands} {fields} deps={ins.deps} ; {src}")
    return "\n".join(lines) + "\n"


def supported_operators() -> List[str]:
    from neuron_emu.compiler.lowering import supported_ops
    return supported_ops()
