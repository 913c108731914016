"""torch_neuronx.experimental: the explicit NeuronCore placement APIs (also exported at the top level)."""
from torch_neuronx_emu.experimental import placement  # noqa: F401
from torch_neuronx_emu.experimental.placement import (multicore_context, neuron_cores_context,  # noqa: F401
                                                      set_multicore, set_neuron_cores)

__all__ = ["placement", "set_neuron_cores", "set_multicore", "neuron_cores_context", "multicore_context"]
