"""Runtime: executes compiled artifacts on emulated NeuronCores through the C++ program loop."""
from neuron_emu.runtime import ops  # noqa: F401  (registers neuron::forward_v2)
from neuron_emu.runtime.model import CallSummary, EngineSummary, LoadedModel, last_call, load  # noqa: F401
