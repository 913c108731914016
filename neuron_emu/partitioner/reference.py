"""Test oracle for a partitioned model: the same plan with every compiled segment replaced by the compiler's
eager reference (compiler/reference.py: PyTorch eager with the casts the options apply) and CPU ops run as is."""
from __future__ import annotations

import torch

from neuron_emu.compiler.reference import run_reference
from neuron_emu.partitioner.module import execute
from neuron_emu.partitioner.subgraph import segment_graph


def run_plan_reference(graph, plan, options, example_inputs) -> list:
    def segment(k, seg, xs):
        return run_reference(segment_graph(seg), options, xs)
    with torch.no_grad():
        return execute(plan.steps, graph.inputs, graph.outputs, tuple(example_inputs), segment, lambda v: v.const)
