"""Runtime: executes compiled artifacts on emulated NeuronCores through the C++ program loop."""
from neuron_emu.runtime import ops  # noqa: F401  (registers neuron::forward_v2)
from neuron_emu.runtime.core import CoreCounters, EngineSummary, NeuronCore  # noqa: F401
from neuron_emu.runtime.model import CallSummary, LoadedModel, last_call  # noqa: F401
from neuron_emu.runtime.placement import Runtime, load, runtime, runtime_for  # noqa: F401
