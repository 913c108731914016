"""When a loaded trace goes onto a NeuronCore: torch_neuronx.lazy_load / async_load (neuron-api.md 2.4).

Called right after trace and before torch.jit.save; the settings are saved with the module (TorchScript
attributes) and act at torch.jit.load, which `import torch_neuronx_emu` wraps (`neuron_load`), as the SDK's
library load hooks its `neuron::Model` deserialisation:
- default: torch.jit.load loads every compiled graph of the module on the least-used NeuronCore (a
  `_C.Program` built and validated: the emulator's model load);
- lazy_load: nothing is loaded until the first forward (or DataParallel / set_neuron_cores placing it);
- async_load: torch.jit.load starts the load on a background thread and returns; the first forward waits for it
  (the runtime's lock serialises the load and the first call, so neither loads twice).
With both set, lazy wins (ASSUMPTION: the SDK says they may be combined, not what that does). Inside
neuron_cores_context / multicore_context the context places the model instead."""
from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Dict, Iterator, List, Optional

import torch

from neuron_emu.runtime import placement as rt_placement
from torch_neuronx_emu.experimental.placement import artifacts

__all__ = ["lazy_load", "async_load", "load_settings", "neuron_load", "pending_load"]

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
    """Load `trace` on a background thread at torch.jit.load; forward waits for the load to finish."""
    _set(trace, "async", enable_async_load)


def load_settings(trace) -> Dict[str, bool]:
    """{"lazy": ..., "async": ...} as recorded on the (first) traced module; False when never set."""
    m = next(_traced_modules(trace), None)
    return {k: bool(m._c.getattr(a)) if m is not None and m._c.hasattr(a) else False for k, a in _ATTRS.items()}


# -- what torch.jit.load does with the settings ---------------------------------------------------------------

_state = threading.local()
_loader: Optional[ThreadPoolExecutor] = None
_loader_lock = threading.Lock()
_pending: Dict[int, Future] = {}   # id(artifact tensor) -> its background load (async_load), until done


@contextlib.contextmanager
def placement_pending() -> Iterator[None]:
    """torch.jit.load within the block leaves placement to the caller (the placement contexts)."""
    prev = getattr(_state, "placing", False)
    _state.placing = True
    try:
        yield
    finally:
        _state.placing = prev


def _forget_loader_in_child() -> None:
    """A forked child has none of the parent's threads: the loader would wait on them forever, and loads under
    way in the parent never finish here (the child's first call loads the model itself)."""
    global _loader, _loader_lock
    _loader, _loader_lock = None, threading.Lock()
    _pending.clear()


os.register_at_fork(after_in_child=_forget_loader_in_child)


def _background() -> ThreadPoolExecutor:
    global _loader
    with _loader_lock:
        if _loader is None:
            _loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="neuron-async-load")
        return _loader


def _load_async(blob: torch.Tensor) -> None:
    key = id(blob)

    def run():
        try:
            rt_placement.model_for(blob)
        finally:
            _pending.pop(key, None)

    _pending[key] = _background().submit(run)


def pending_load(blob: torch.Tensor) -> Optional[Future]:
    """The background load (async_load) of an artifact tensor still under way, if any."""
    return _pending.get(id(blob))


def apply_load_settings(module) -> None:
    """Load the module's compiled graphs now, in the background, or not at all, as their settings say."""
    try:
        mods: List = list(_traced_modules(module))
    except (TypeError, ValueError):
        return   # not a Neuron trace
    for m in mods:
        lazy = m._c.hasattr(_ATTRS["lazy"]) and bool(m._c.getattr(_ATTRS["lazy"]))
        background = m._c.hasattr(_ATTRS["async"]) and bool(m._c.getattr(_ATTRS["async"]))
        if lazy:
            continue
        if background:
            _load_async(m.neff)
        else:
            rt_placement.model_for(m.neff)


_torch_jit_load = torch.jit.load


def neuron_load(*args, **kwargs):
    """torch.jit.load, then each compiled graph of the result loaded as lazy_load/async_load say."""
    module = _torch_jit_load(*args, **kwargs)
    if not getattr(_state, "placing", False):
        apply_load_settings(module)
    return module


neuron_load.__doc__ = (_torch_jit_load.__doc__ or "") + "\n(neuron-emu: also loads Neuron traces on a NeuronCore)"
neuron_load.__wrapped__ = _torch_jit_load   # as functools.wraps sets it: inspect.unwrap finds TorchScript's load
torch.jit.load = neuron_load
