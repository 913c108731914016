"""Emulation of `torch_neuron` (Inferentia1, NeuronCore-v1) on CPU. See trace.py for what is emulated."""
from torch_neuron_emu.trace import trace  # noqa: F401
from neuron_emu.runtime import last_call  # noqa: F401
from torch_neuron_emu.profile import profile  # noqa: F401


def is_available() -> bool:
    """The emulated runtime is always available."""
    return True
