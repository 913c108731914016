"""Drop-in emulation of `torch_neuronx` (Inferentia2 / Trainium, NeuronCore-v2) on CPU."""
from torch_neuronx_emu.trace import trace, hint  # noqa: F401
from neuron_emu.runtime import last_call  # noqa: F401

__all__ = ["trace", "hint", "last_call"]
