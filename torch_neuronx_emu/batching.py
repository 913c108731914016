"""torch_neuronx.dynamic_batch (neuron-api.md 2.2): run a traced model on any batch size along dimension 0;
the runtime splits and pads the batch into compiled-size chunks (neuron_emu/runtime/batching.py)."""
from __future__ import annotations

from neuron_emu.runtime import placement as rt_placement
from torch_neuronx_emu.experimental.placement import artifacts

__all__ = ["dynamic_batch"]


def dynamic_batch(neuron_script):
    """Enable dynamic batching on a traced module, in place; returns the same module. Inputs whose sizes in
    dimension 0 disagree, or whose other dimensions differ from the compiled ones, raise ValueError."""
    for blob in artifacts(neuron_script):
        rt_placement.place(blob, dynamic=True)
    return neuron_script
