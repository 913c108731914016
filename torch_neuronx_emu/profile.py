"""torch_neuronx_emu.profile: where the time of one call goes on an emulated Inferentia2/Trainium NeuronCore."""
from __future__ import annotations

from neuron_emu.profile_report import Report


def profile(model, *inputs, instance_type: str = "inf2.xlarge", num_cores: int = 1) -> Report:
    """Report latency, throughput on `num_cores` cores (data parallel), cost per inference, per-engine busy time,
    bottleneck, FLOPs and memory traffic of `model` (a traced module, or a plain module traced here) on `inputs`.
    A plain module is traced with torch_neuronx_emu.trace's defaults (pass a traced module to choose compiler_args).
    Nothing is executed: the report is the compiled program's modelled timeline (docs/cost-model.md)."""
    from neuron_emu.profiler import profile as _profile
    from torch_neuronx_emu.trace import trace

    return _profile(model, inputs, instance_type=instance_type, num_cores=num_cores, generation=2, tracer=trace)
