"""Test oracle for a partitioned model: the same plan with every compiled segment replaced by the compiler's
eager reference (compiler/reference.py: PyTorch eager with the casts the options apply) and CPU ops run as is."""
from __future__ import annotations

import torch

from neuron_emu.compiler.fold import fold_and_prune
from neuron_emu.compiler.fold_batchnorm import fold_batchnorm
from neuron_emu.compiler.reference import run_reference
from neuron_emu.partitioner.module import execute
from neuron_emu.partitioner.subgraph import segment_graph


def run_plan_reference(graph, plan, options, example_inputs) -> list:
    def segment(k, seg, xs):
        g = segment_graph(seg)
        fold_batchnorm(g, fold_and_prune(g))  # the graph rewrites compile_graph applies (the reference reads them)
        return run_reference(g, options, xs)
    with torch.no_grad():
        return execute(plan.steps, graph.inputs, graph.outputs, tuple(example_inputs), segment, lambda v: v.const)
