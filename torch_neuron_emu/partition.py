"""torch-neuron's partitioning rules over the generic partitioner (neuron_emu/partitioner/): the published
operator list, `subgraph_builder_function`, `minimum_segment_size`, `single_fusion_ratio_threshold`, `fallback`,
and the `Neuron` logger lines of docs/reference/neuron-api.md 1.2."""
from __future__ import annotations

import collections
import logging
import uuid
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from neuron_emu.compiler import CompilationError, artifact, compile_graph
from neuron_emu.compiler.capture import capture
from neuron_emu.compiler.fold import fold_and_prune
from neuron_emu.partitioner import partition, segment_graph
from neuron_emu.partitioner import module_from_plan as generic_module_from_plan
from torch_neuron_emu.optimizations import FP16_IO_HEADER, cast_io_to_fp16
from torch_neuron_emu.pipeline import stage_cuts, stamp
from torch_neuron_emu.supported_ops import is_published, is_supported, torchscript_name

logger = logging.getLogger("Neuron")
_OPS_URL = "https://github.com/aws/aws-neuron-sdk/blob/master/release-notes/neuron-cc-ops/neuron-cc-ops-pytorch.md"
# layout-only ops: not "arithmetic operators" in torch-neuron's fused/compiled percentages
_LAYOUT = {"aten::view", "aten::reshape", "aten::transpose", "aten::permute", "aten::expand", "aten::select",
           "aten::slice", "aten::squeeze", "aten::unsqueeze", "aten::t", "aten::contiguous", "aten::to",
           "aten::flatten", "aten::detach", "aten::clone"}


class PartitionNode:
    """What `subgraph_builder_function(node)` sees: `node.name` holds the module scope (TorchScript's
    `Model/Sequential[model]/Detect[24]` style), `node.kind()` the operator."""

    def __init__(self, node):
        self._node = node
        self.name = node.scope
        self.where = node.where

    def kind(self) -> str:
        return torchscript_name(self._node.name)

    def __repr__(self):
        return f"PartitionNode({self.kind()} in {self.name!r})"


def _arith(nodes):
    return [n for n in nodes if torchscript_name(n.name) not in _LAYOUT]


@dataclass
class Partitioned:
    graph: object          # the captured, folded compiler Graph
    plan: object           # neuron_emu.partitioner.Plan: the compiled segments and the CPU nodes, in order
    neffs: list            # artifact of plan.segments[k]


def plan_model(model, inputs: tuple, options, *, generation: int = 1,
               subgraph_builder_function: Optional[Callable] = None, minimum_segment_size: int = 2,
               single_fusion_ratio_threshold: float = 0.6, fallback: bool = True, compile_hook=None,
               pipeline_cores: int = 1, fp16_io: bool = False, header: Optional[dict] = None) -> Partitioned:
    """Capture, partition by the Inf1 rules and compile each subgraph for NeuronCore-v1, logging as torch-neuron.
    `fp16_io`: Optimization.FLOAT32_TO_FLOAT16 (optimizations.py); `header`: fields added to every artifact's
    header (dynamic_batch.py)."""
    header = dict(header or {}, **({FP16_IO_HEADER: True} if fp16_io else {}))
    graph = capture(model, inputs)[0]
    nodes = fold_and_prune(graph)

    def supported(n):
        if not is_supported(n) or any(v.dtype.is_complex for v in n.value_args() + n.outputs):
            return False  # (neuron-cc has no complex type)
        return subgraph_builder_function is None or bool(subgraph_builder_function(PartitionNode(n)))

    unsupported = [n for n in nodes if not is_supported(n)]
    if unsupported and not fallback:
        n = unsupported[0]
        raise AttributeError(f"Neuron compile failed. Operator {torchscript_name(n.name)} is not supported "
                             f"(called from {n.where}); trace with fallback=True to run it on CPU")
    if unsupported:
        kinds = sorted({torchscript_name(n.name) for n in unsupported})
        logger.info("There are %d ops of %d different types in the TorchScript that are not compiled by neuron-cc: "
                    "%s, (For more information see %s)", len(unsupported), len(kinds), ", ".join(kinds), _OPS_URL)

    def keep(runs):
        total = sum(len(r) for r in runs)
        if runs and single_fusion_ratio_threshold < 1.0:
            big = max(runs, key=len)
            if len(big) > single_fusion_ratio_threshold * total:
                return [big]  # one partition dominates: only it is compiled [api 1.1]
        return runs

    plan = partition(nodes, graph.outputs, supported, minimum_segment_size, keep)
    arith = _arith(nodes)
    fused = _arith([n for s in plan.segments for n in s.nodes])
    pct = 100.0 * len(fused) / max(len(arith), 1)
    logger.info("Number of arithmetic operators (pre-compilation) before = %d, fused = %d, percent fused = %.2f%%",
                len(arith), len(fused), pct)
    logger.info("The neuron partitioner created %d sub-graphs", len(plan.segments))

    stage_of, model_id = {}, uuid.uuid4().hex
    if pipeline_cores > 1:  # each subgraph cut into stages on as many cores (pipeline.py)
        for seg in list(plan.segments):
            for i, sub in enumerate(plan.split(seg, stage_cuts(seg.nodes, pipeline_cores))):
                stage_of[id(sub)] = i
    neffs, failed = [], []
    for k, seg in enumerate(plan.segments):
        logger.info("Compiling function _NeuronGraph$%d with neuron-cc", k + 1)
        logger.info("Compiling with command line: '%s'", options.command_line("<tmpdir>"))
        try:
            sub = segment_graph(seg)
            compiled = compile_graph(cast_io_to_fp16(sub) if fp16_io else sub, options, generation=generation)
        except CompilationError as e:
            if not fallback or stage_of:
                raise
            logger.warning("torch.neuron.trace failed on _NeuronGraph$%d; falling back to native python function "
                           "call (%s)", k + 1, e)
            failed.append(seg)
            continue
        if compile_hook is not None:
            compile_hook(seg, compiled)
        blob = artifact.with_header(compiled.blob, **header) if header else compiled.blob
        neffs.append(blob if id(seg) not in stage_of else stamp(blob, stage_of[id(seg)], pipeline_cores, model_id))
    if failed:  # re-plan with the failed segments' nodes on CPU
        bad = {id(n) for s in failed for n in s.nodes}
        ok = {id(s.nodes[0]) for s in plan.segments if s not in failed}
        plan = partition(nodes, graph.outputs, lambda n: id(n) not in bad and supported(n), minimum_segment_size,
                         lambda runs: [r for r in runs if id(r[0]) in ok])

    compiled_nodes = [n for s in plan.segments for n in s.nodes]
    if not plan.segments:
        logger.warning("No operator is placed on Neuron runtime; returning a CPU trace")
        return Partitioned(graph, plan, neffs)
    n_compiled = len(_arith(compiled_nodes))
    logger.info("Number of arithmetic operators (post-compilation) before = %d, compiled = %d, percent compiled = "
                "%.2f%%", len(arith), n_compiled, 100.0 * n_compiled / max(len(arith), 1))
    n = len(plan.segments) + len(failed)
    logger.info("Neuron successfully compiled %d sub-graphs, Total fused subgraphs = %d, Percent of model sub-graphs "
                "successfully compiled = %.1f%%", len(plan.segments), n, 100.0 * len(plan.segments) / n)
    logger.info("Compiled these operators (and operator counts) to Neuron:")
    for name, c in sorted(collections.Counter(torchscript_name(x.name) for x in compiled_nodes).items()):
        logger.info(" => %s: %d", name, c)
    cpu = plan.cpu_nodes
    if cpu:
        logger.info("Not compiled operators (and operator counts) to Neuron:")
        for name, c in sorted(collections.Counter(torchscript_name(x.name) for x in cpu).items()):
            logger.info(" => %s: %d [%s]", name, c, "supported" if is_published(name) else "not supported")
    if n_compiled * 2 < len(arith):
        logger.warning("torch.neuron.trace was unable to compile > 50% of the operators in the compiled model!")
        logger.warning("Please review the torch.neuron.analyze_model output and if you believe you are seeing a "
                       "failure please file an issue on GitHub")
    return Partitioned(graph, plan, neffs)


def trace_partitioned(model, inputs: tuple, options, *, trace_kwargs=None, **kw):
    """plan_model, then the TorchScript module: one Neuron op when the whole model compiled as one subgraph, a
    partitioned module (neuron::forward_1 + aten:: CPU ops) otherwise, a CPU trace when nothing compiled."""
    return module_from_plan(model, plan_model(model, inputs, options, **kw), inputs, trace_kwargs)


def module_from_plan(model, p: Partitioned, inputs: tuple, trace_kwargs=None):
    return generic_module_from_plan(model, p.graph, p.plan, p.neffs, inputs, trace_kwargs, op="forward_1")


def analyze_model(model, example_inputs):
    """Print which of the model's operators torch-neuron supports (docs/reference/neuron-api.md 1.4) and
    return the report as a dict."""
    inputs = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
    graph = capture(model, inputs)[0]
    nodes = fold_and_prune(graph)
    counts = collections.Counter(torchscript_name(n.name) for n in nodes)
    sup = {k: v for k, v in counts.items() if is_published(k)}
    unsup = {k: v for k, v in counts.items() if not is_published(k)}
    arith = _arith(nodes)
    arith_sup = [n for n in arith if is_published(n.name)]
    logger.info("The following operations are currently supported in torch-neuron for this model:")
    for k in sorted(sup):
        logger.info("%s", k)
    logger.info("The following operations are currently not supported in torch-neuron for this model:")
    for k in sorted(unsup):
        logger.info("%s", k)
    n_sup, n_all = sum(sup.values()), sum(counts.values())
    logger.info("%.2f%% of all operations (including primitives) (%d of %d) are supported",
                100.0 * n_sup / max(n_all, 1), n_sup, n_all)
    logger.info("%.2f%% of arithmetic operations (%d of %d) are supported",
                100.0 * len(arith_sup) / max(len(arith), 1), len(arith_sup), len(arith))
    if not unsup:
        logger.info("All operators are compiled by neuron-cc (this does not guarantee that neuron-cc will "
                    "successfully compile)")
    return {"supported_operators": dict(sorted(sup.items())), "unsupported_operators": dict(sorted(unsup.items())),
            "percent_supported": round(100.0 * n_sup / max(n_all, 1), 2),
            "percent_arithmetic_supported": round(100.0 * len(arith_sup) / max(len(arith), 1), 2)}
