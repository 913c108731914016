"""Test oracle for a partitioned model: the same plan with every compiled segment replaced by the compiler's
eager reference (compiler/reference.py: PyTorch eager with the casts the options apply) and CPU ops run as is."""
from __future__ import annotations

import torch

from neuron_emu.compiler.fold import fold_and_prune
from neuron_emu.compiler.fold_batchnorm import fold_batchnorm
from neuron_emu.compiler.reference import run_reference
from neuron_emu.partitioner.module import execute
from neuron_emu.partitioner.subgraph import segment_graph


def run_plan_reference(graph, plan, options, example_inputs, fp16_io: bool = False) -> list:
    """`fp16_io`: torch_neuron's FLOAT32_TO_FLOAT16, applied outside the graph: each segment's fp32 inputs and
    outputs rounded to fp16 (torch's conversion), the outputs left fp16 as the traced model returns them."""
    def half(x):
        return x.to(torch.float16) if x.dtype == torch.float32 else x

    def segment(k, seg, xs):
        g = segment_graph(seg)
        fold_batchnorm(g, fold_and_prune(g))  # the graph rewrites compile_graph applies (the reference reads them)
        if not fp16_io:
            return run_reference(g, options, xs)
        xs = [x.to(torch.float16).to(v.dtype) if v.dtype == torch.float32 else x for x, v in zip(xs, seg.inputs)]
        return [half(y) for y in run_reference(g, options, xs)]
    with torch.no_grad():
        return execute(plan.steps, graph.inputs, graph.outputs, tuple(example_inputs), segment, lambda v: v.const)
