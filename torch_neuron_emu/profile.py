"""torch_neuron_emu.profile: where the time of one call goes on an emulated Inferentia1 NeuronCore-v1."""
from __future__ import annotations

from neuron_emu.profile_report import Report


def profile(model, *inputs, instance_type: str = "inf1.xlarge", num_cores: int = 1) -> Report:
    """As torch_neuronx_emu.profile, for NeuronCore-v1 (a plain module is traced with torch_neuron's defaults)."""
    from neuron_emu.profiler import profile as _profile
    from torch_neuron_emu.trace import trace

    return _profile(model, inputs, instance_type=instance_type, num_cores=num_cores, generation=1, tracer=trace)
