"""torch_neuronx.dynamic_batch (neuron-api.md 2.2): run a traced model on any batch size along dimension 0;
the runtime splits and pads the batch into compiled-size chunks (neuron_emu/runtime/batching.py).

The inputs are checked in Python before the module's TorchScript forward (which dynamic_batch wraps; script
modules take no forward hooks): a ValueError raised inside the TorchScript interpreter (in neuron::forward_v2)
would reach the caller as a RuntimeError."""
from __future__ import annotations

import weakref

import torch
from torch.utils import _pytree as pytree

from neuron_emu.runtime import batching
from neuron_emu.runtime import placement as rt_placement
from torch_neuronx_emu.experimental.placement import artifacts

__all__ = ["dynamic_batch"]

_wrapped: "weakref.WeakKeyDictionary[torch.nn.Module, bool]" = weakref.WeakKeyDictionary()


def _checked_forward(module: torch.nn.Module) -> None:
    """Give a traced module (one whose own `neff` is its artifact) a forward that checks its inputs first."""
    blob = dict(module.named_buffers(recurse=False)).get("neff")
    if blob is None or module in _wrapped:
        return
    real = module.forward   # the TorchScript method; the closure holds the artifact, not the module (no cycle)

    def forward(*args, **kwargs):
        placed = rt_placement.current(blob)
        if isinstance(placed, rt_placement.Deployment) and placed.dynamic:
            batching.check(placed.models[0], pytree.tree_flatten(args)[0])
        return real(*args, **kwargs)

    module.forward = forward
    _wrapped[module] = True


def dynamic_batch(neuron_script):
    """Enable dynamic batching on a traced module, in place; returns the same module. Inputs whose sizes in
    dimension 0 disagree, or whose other dimensions differ from the compiled ones, raise ValueError."""
    for blob in artifacts(neuron_script):
        rt_placement.place(blob, dynamic=True)
    _checked_forward(neuron_script)
    return neuron_script
