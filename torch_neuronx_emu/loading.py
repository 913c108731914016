"""torch_neuronx.lazy_load / async_load (neuron-api.md 2.4): load-time settings of a trace, called right after
trace and before torch.jit.save; they are saved with the module (TorchScript attributes).

In the emulator every model is already loaded lazily: torch.jit.load only deserialises the module, and the
runtime loads the artifact on a NeuronCore at its first forward (or when placed explicitly: set_neuron_cores,
DataParallel). So lazy_load's behaviour is the emulator's default, and async_load, whose background load
overlaps the load with other work before the first forward, has no load at torch.jit.load to overlap. Both
record their setting (see `load_settings`) so that scripts written for the SDK run unchanged."""
from __future__ import annotations

from typing import Dict

import torch

from torch_neuronx_emu.experimental.placement import artifacts

__all__ = ["lazy_load", "async_load", "load_settings"]

_ATTRS = {"lazy": "neuron_lazy_load", "async": "neuron_async_load"}


def _traced_modules(trace):
    artifacts(trace)   # TypeError / ValueError for anything but a (module containing a) Neuron trace
    for m in trace.modules():
        if "neff" in dict(m.named_buffers(recurse=False)) and hasattr(m, "_c"):
            yield m


def _set(trace, key: str, value: bool) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"expected a bool, got {type(value).__name__}")
    for m in _traced_modules(trace):
        name = _ATTRS[key]
        if m._c.hasattr(name):
            m._c.setattr(name, value)
        else:
            m._c._register_attribute(name, torch._C.BoolType.get(), value)


def lazy_load(trace, enable_lazy_load: bool = True) -> None:
    """Load `trace` on a NeuronCore at its first forward (or in DataParallel), not at torch.jit.load."""
    _set(trace, "lazy", enable_lazy_load)


def async_load(trace, enable_async_load: bool = True) -> None:
    """Load `trace` on a background thread; forward waits for the load to finish."""
    _set(trace, "async", enable_async_load)


def load_settings(trace) -> Dict[str, bool]:
    """{"lazy": ..., "async": ...} as recorded on the (first) traced module; False when never set."""
    m = next(_traced_modules(trace), None)
    return {k: bool(m._c.getattr(a)) if m is not None and m._c.hasattr(a) else False for k, a in _ATTRS.items()}
