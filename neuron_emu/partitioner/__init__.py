"""A generic graph partitioner: supported ops fused into compiled Neuron subgraphs, the rest left on CPU.

    nodes = fold_and_prune(graph)
    plan = partition(nodes, graph.outputs, is_supported, min_segment_size=2)          # segments.py
    neffs = [compile_graph(segment_graph(s), options, gen).blob for s in plan.segments]  # subgraph.py
    module = build_module(graph.inputs, graph.outputs, graph.out_spec, plan, neffs, example_inputs)  # module.py

`is_supported(node) -> bool` and the compiler options come from the front end (torch_neuron_emu for Inf1 with
the published operator list; torch_neuronx's PartitionerConfig reuses the same pieces). The result is a
TorchScript module whose graph holds one `neuron::forward_1` (torch_neuron) or `neuron::forward_v2` (torch_neuronx)
op per compiled subgraph and the CPU ops as ordinary `aten::` nodes."""
from neuron_emu.partitioner.segments import Plan, Segment, partition  # noqa: F401
from neuron_emu.partitioner.subgraph import segment_graph  # noqa: F401
from neuron_emu.partitioner.module import PartitionedModule, build_module, execute, module_from_plan  # noqa: F401
